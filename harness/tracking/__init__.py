"""Live tracking: runs reported to TensorBoard or to an MLflow server as they train.

A tracker is the runner's ``Tracker`` hook (``harness.runner.train``): the runner calls it at the
start (with the record and any epochs already done), after every epoch and at the end; nothing
in the training loop knows which trackers exist. ``TrackSpec`` is what ``--track`` said, small and
picklable, so tuning and grid worker processes build their own trackers from it. The results
store stays the record; a tracker that fails mid-run is switched off with a warning and the run
goes on.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

TRACKERS = ("tensorboard", "mlflow")


@dataclass(frozen=True)
class TrackSpec:
    """``--track`` and its options: which trackers, where, and the parent run of a study's trials."""

    kinds: tuple[str, ...] = ()
    mlflow_uri: str | None = None
    mlflow_experiment: str = "harness"
    parent_run: str | None = None  # MLflow run id that the runs are logged under (a tuning study)
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in self.kinds:
            if kind not in TRACKERS:
                raise ConfigError(f"--track {kind!r}: choose from {', '.join(TRACKERS)}")
        if "mlflow" in self.kinds and not self.mlflow_uri:
            raise ConfigError("--track mlflow needs --mlflow-uri URI (e.g. http://127.0.0.1:5000)")
        if self.mlflow_uri and "mlflow" not in self.kinds:
            raise ConfigError("--mlflow-uri is given but not --track mlflow")

    def check(self) -> None:
        """Fail now, in one line, if a tracker cannot work: its package is missing or its server is down."""
        if "tensorboard" in self.kinds:
            from harness.tracking.tensorboard import check_installed

            check_installed()
        if "mlflow" in self.kinds:
            from harness.tracking.mlflow import check_server

            check_server(self.mlflow_uri)

    def open_parent(self, name: str, params: dict[str, Any]) -> "TrackSpec":
        """Log ``name`` (a tuning study) as an MLflow run whose children are the runs built from the result."""
        if "mlflow" not in self.kinds:
            return self
        from harness.tracking.mlflow import start_parent

        return replace(self, parent_run=start_parent(str(self.mlflow_uri), self.mlflow_experiment, name, params))

    def close_parent(self, status: str, metrics: dict[str, float]) -> None:
        if self.parent_run:
            from harness.tracking.mlflow import finish_parent

            finish_parent(str(self.mlflow_uri), self.parent_run, status, metrics)

    def with_tags(self, **tags: str) -> "TrackSpec":
        return replace(self, tags={**self.tags, **tags})

    def build(self) -> "Trackers | None":
        if not self.kinds:
            return None
        trackers = []
        for kind in self.kinds:
            if kind == "tensorboard":
                from harness.tracking.tensorboard import TensorBoardTracker

                trackers.append(TensorBoardTracker())
            else:
                from harness.tracking.mlflow import MlflowTracker

                trackers.append(MlflowTracker(self.mlflow_uri, self.mlflow_experiment, self.parent_run, self.tags))
        return Trackers(trackers)


class Trackers:
    """Several trackers as one; a tracker that raises is reported once and dropped."""

    def __init__(self, trackers: list[Any]):
        self.trackers = list(trackers)
        self.started = False

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # tracking must never cost the run: the record on disk is kept
                self.trackers.remove(tracker)
                reason = " ".join(str(exc).split())[:300]
                print(f"harness: warning: {tracker.name} tracking stopped ({type(exc).__name__}: {reason}); "
                      "the run goes on and its record is kept", file=sys.stderr)

    def start(self, run_dir: Path, record: dict[str, Any], history: list[dict[str, Any]]) -> None:
        self.started = True
        self._each("start", Path(run_dir), record, history)

    def log_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        self._each("log_epoch", epoch, row)

    def finish(self, status: str, summary: dict[str, Any]) -> None:
        if self.started:  # a run that failed before it started (bad data) was never reported
            self._each("finish", status, summary)
