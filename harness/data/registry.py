"""The dataset registry: ``@register_dataset``, layout detection and ``open_dataset``.

Like the architectures' and losses' registries (``harness.registry``): a plugin is a factory
``fn(root: Path, **options) -> Dataset`` registered by name; built-in plugins live in
``harness.data.plugins``, third-party ones come through the entry-point group
``harness.datasets``. A plugin may also declare ``detect(root) -> bool`` and a short
``looks_for`` text, so ``--data PATH`` finds its layout without ``--dataset NAME``; a
``default_root(progress) -> Path`` that makes its own folder (a generator), so ``--data NAME``
opens it; and what reports need to know of its runs without opening the data (:class:`Traits`).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.errors import DataError
from harness.registry import Registry

Detector = Callable[[Path], bool]


@dataclass(frozen=True)
class Layout:
    """How a plugin recognises its layout on disk."""

    detect: Detector | None
    looks_for: str


@dataclass(frozen=True)
class Traits:
    """What a plugin declares about every dataset it reads, so a stored run's plugin name answers it.

    ``synthetic``: the audio is always generated (a plugin may still mark single datasets
    synthetic through ``Dataset.is_synthetic``). ``paper_layout``: the layout and protocol the
    paper's numbers were measured on, so they are printed beside runs on it (labelled not
    comparable when ``synthetic``). ``default_root(progress) -> Path``: the folder ``--data NAME``
    opens, made by the plugin on first use; ``is_default_root(path)`` says whether a recorded
    folder is one such (on any machine, by any generator version).
    """

    synthetic: bool = False
    paper_layout: bool = False
    default_root: Callable[[bool], Path] | None = None
    is_default_root: Detector | None = None


class DatasetRegistry(Registry):
    """A :class:`~harness.registry.Registry` whose entries also know how to recognise their layout."""

    def __init__(self) -> None:
        super().__init__(kind="dataset", builtin_package="harness.data.plugins", entry_point_group="harness.datasets",
                         flag="--data-opt", hidden_args=("root", "progress"))
        self.layouts: dict[str, Layout] = {}
        self.traits: dict[str, Traits] = {}

    def register(self, name: str, description: str = "", *, detect: Detector | None = None,  # type: ignore[override]
                 looks_for: str = "", prefix: bool = False, synthetic: bool = False, paper_layout: bool = False,
                 default_root: Callable[[bool], Path] | None = None, is_default_root: Detector | None = None):
        """Decorator: ``@register_dataset("esc50", "…", detect=fn, looks_for="meta/esc50.csv")``;
        the other keywords are the plugin's :class:`Traits`."""
        base = super().register(name, description, prefix=prefix)

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.layouts[name] = Layout(detect, looks_for or "(no detection: use --dataset " + name + ")")
            self.traits[name] = Traits(synthetic, paper_layout, default_root, is_default_root)
            return base(fn)

        return decorate

    def traits_of(self, name: str | None) -> Traits:
        """What plugin ``name`` declares; nothing for a name no installed plugin has."""
        self.load()
        return self.traits.get(name or "", Traits())

    def paper_dataset(self) -> str | None:
        """The plugin reading the data the paper's numbers were measured on (real, in its layout)."""
        self.load()
        return next((n for n in self.names() if self.traits_of(n).paper_layout and not self.traits_of(n).synthetic), None)

    def detect(self, root: Path) -> list[str]:
        """Every registered layout that recognises ``root``."""
        self.load()
        found = []
        for name in self.names():
            layout = self.layouts.get(name)
            if layout is None or layout.detect is None:
                continue
            try:
                if layout.detect(root):
                    found.append(name)
            except DataError:
                raise
            except Exception as exc:  # a third-party detector must not break detection of the others
                warnings.warn(f"dataset {name!r}: layout detection failed on {root}: {exc}")
        return found

    def looked_for(self) -> str:
        self.load()
        return "; ".join(f"{n}: {self.layouts[n].looks_for}" for n in self.names()
                         if n in self.layouts and self.layouts[n].detect is not None)


DATASETS = DatasetRegistry()
register_dataset = DATASETS.register

#: What ``--data`` means when none is given: a plugin with a default root.
DEFAULT_DATA = "synthetic"


def opens_by_name(data: str | Path) -> bool:
    """Whether ``--data DATA`` names a plugin that makes its own folder (:data:`DEFAULT_DATA`) rather than a folder."""
    return DATASETS.traits_of(str(data)).default_root is not None


def resolve_layout(root: Path, dataset: str | None = None) -> str:
    """The plugin for ``root``: ``dataset`` if given, else the one layout that recognises it."""
    if dataset:
        DATASETS.get(dataset)  # unknown names: one line with the known ones
        return dataset
    if not root.exists():
        raise DataError(
            "dataset folder not found; give a dataset folder as distributed (see `harness list --kind data`), "
            f"or omit --data to use the {DEFAULT_DATA} default, or run `harness data synth`", root)
    found = DATASETS.detect(root)
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(f"no known dataset layout found; looked for {DATASETS.looked_for()} "
                        "(force one with --dataset NAME)", root)
    raise DataError(f"ambiguous dataset layout: matches {', '.join(found)}; choose one with --dataset NAME", root)


def open_dataset(data: str | Path = DEFAULT_DATA, *, dataset: str | None = None, progress: bool = True,
                 announce: bool = False, **options: Any):
    """Load a dataset: a folder read by its detected (or forced) plugin, or the name of a plugin
    that makes its own folder (:data:`DEFAULT_DATA`, the generated default).

    ``options`` go to the plugin's factory (``subset="esc10"`` for ESC-50); ``None`` values are
    dropped and unknown ones are a one-line error naming the plugin's options.
    """
    make = DATASETS.traits_of(str(data)).default_root
    if make is not None and dataset in (None, str(data)):
        root, name = make(progress), str(data)
    else:
        root = Path(data).expanduser().resolve()
        name = resolve_layout(root, dataset)
        if announce and not dataset:  # standard output: standard error is for the one-line error alone
            print(f"data: {root} detected as {name}", flush=True)
    options = DATASETS.resolve_options(name, {k: v for k, v in options.items() if v is not None}, defaults=False)
    plugin, _ = DATASETS.get(name)
    params = inspect.signature(plugin.factory).parameters
    if "progress" in params:
        options.setdefault("progress", progress)
    return DATASETS.create(name, root=root, **options)
