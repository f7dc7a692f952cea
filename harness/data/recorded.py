"""What a stored run says about its dataset, answered the same way for every store.

Tables and reports never open a run's data: they read its index row (the plugin's name and the
folder) or the ``dataset`` record of its ``config.json`` (:meth:`~harness.data.dataset.Dataset.record`).
Whether the audio was generated, whether the paper's numbers belong beside the runs, and what
``--data`` opens the data again are answered here, from the recorded fields where a record has
them and else (index rows, records written before a field existed) from what the plugin declares
at registration (:class:`~harness.data.registry.Traits`). No other module needs a dataset's name
to answer them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from harness.data.registry import DATASETS, DEFAULT_DATA, Traits


@dataclass(frozen=True)
class RecordedDataset:
    """A stored run's dataset: ``name`` (the plugin that read it), ``root`` (its folder), and the
    record's ``synthetic`` flag when there is one. Neither name nor folder: no run recorded yet,
    which stands for the default data (:data:`~harness.data.registry.DEFAULT_DATA`)."""

    name: str | None = None
    root: str | None = None
    recorded_synthetic: bool | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> RecordedDataset:
        """From ``config.json``'s ``dataset`` record (``Dataset.record()``), old or new."""
        record = record or {}
        synthetic = record.get("synthetic")
        return cls(record.get("name") or None, record.get("root") or None, None if synthetic is None else bool(synthetic))

    @property
    def plugin(self) -> str | None:
        """The plugin's name; None for a folder no stored run has used."""
        return self.name or (None if self.root else DEFAULT_DATA)

    @property
    def traits(self) -> Traits:
        return DATASETS.traits_of(self.plugin)

    @property
    def synthetic(self) -> bool:
        """Whether the audio was generated: the record says so, else its plugin always generates."""
        return self.recorded_synthetic if self.recorded_synthetic is not None else self.traits.synthetic

    @property
    def beside_paper(self) -> bool:
        """Whether the paper's numbers belong beside runs on it: the paper's layout and protocol
        (real, or a generated copy labelled not comparable); never another dataset's numbers.
        A folder no run has used yet may be the paper's data: its numbers are shown."""
        return self.plugin is None or self.traits.paper_layout

    @property
    def comparable_with_paper(self) -> bool:
        """The data the paper's numbers were measured on, not a generated copy of it."""
        return self.traits.paper_layout and not self.synthetic

    @property
    def data_arg(self) -> str:
        """What to pass as ``harness run --data`` to add runs on this dataset: the plugin's name
        for a folder the plugin made itself (its default root), else the folder."""
        if not self.root:
            return self.plugin or DEFAULT_DATA
        owns = self.traits.is_default_root
        return str(self.plugin) if owns is not None and owns(Path(self.root)) else self.root

    def describe(self) -> str:
        """A phrase naming the data and how it compares with the paper's."""
        if self.plugin is None:
            return "a dataset no stored run has used yet"
        if self.traits.paper_layout and self.synthetic:
            return "synthetic dataset (generated audio, not TAU; not comparable with the paper's numbers)"
        text = self.title
        paper = DATASETS.paper_dataset()
        if not self.traits.paper_layout and paper:
            text += f" (the paper used {paper})"
        return text

    @property
    def title(self) -> str:
        """``name: description`` of the registered plugin (its name alone when none is installed)."""
        DATASETS.load()
        plugin = DATASETS.plugins.get(self.plugin or "")
        return f"{self.plugin}: {plugin.description.split(':')[0].split(';')[0]}" if plugin else str(self.plugin)
