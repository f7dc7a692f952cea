"""``--track mlflow --mlflow-uri URI``: each run as an MLflow run named by its run id.

Params are the resolved configuration, metrics are logged per epoch (step = epoch), and at the end
the run folder is uploaded as the run's artifacts. The client talks to the server directly
(``MlflowClient``, no global active run), so tuning trials in several processes each log their
own run, as children of the study's parent run.
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from harness.errors import ConfigError
from harness.tracking.values import epoch_scalars, flat_config, summary_scalars

#: MLflow's end states for the runner's statuses.
STATUS = {"complete": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}
#: Without these, a client retries an unreachable server with back-off for minutes; the harness
#: prefers to find out in seconds (set them in the environment to choose otherwise).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def metric_key(name: str) -> str:
    """MLflow keys allow letters, digits and ``_ - . / : space``."""
    return re.sub(r"[^A-Za-z0-9_\-./: ]", "_", name)


@contextmanager
def _quick_failures() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in HTTP_DEFAULTS}
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def client(uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("--track mlflow needs the mlflow package: pip install 'harness[mlflow]'") from None
    for k, v in HTTP_DEFAULTS.items():
        os.environ.setdefault(k, v)
    return MlflowClient(tracking_uri=uri)


def check_server(uri: str | None) -> None:
    """One request to the tracking server; unreachable or refusing is a one-line error, before training."""
    c = client(str(uri))
    with _quick_failures():
        try:
            c.search_experiments(max_results=1)
        except Exception as exc:
            reason = " ".join(str(exc).split())[:200]
            raise ConfigError(f"--mlflow-uri {uri}: cannot reach the MLflow tracking server ({reason})") from None


def experiment_id(c, name: str) -> str:
    """The experiment called ``name``, created on first use (tolerating a concurrent creator)."""
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return c.create_experiment(name)
    except Exception:
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def log_params(c, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(metric_key(k), str(v)[:6000]) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):  # MLflow's batch limit
        c.log_batch(run_id, params=items[i:i + 100])


def log_metrics(c, run_id: str, values: dict[str, float], step: int) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    c.log_batch(run_id, metrics=[Metric(metric_key(k), v, now, step) for k, v in values.items()])


def start_parent(uri: str, experiment: str, name: str, params: dict[str, Any]) -> str:
    """An MLflow run that groups others (a tuning study's trials); returns its MLflow run id."""
    c = client(uri)
    run = c.create_run(experiment_id(c, experiment), run_name=name, tags={"harness.kind": "study"})
    log_params(c, run.info.run_id, flat_config(params))
    return run.info.run_id


def finish_parent(uri: str, run_id: str, status: str, metrics: dict[str, float]) -> None:
    c = client(uri)
    if metrics:
        log_metrics(c, run_id, metrics, 0)
    c.set_terminated(run_id, STATUS[status])


class MlflowTracker:
    name = "mlflow"

    def __init__(self, uri: str | None, experiment: str = "harness", parent: str | None = None,
                 tags: dict[str, str] | None = None):
        self.uri, self.experiment, self.parent, self.tags = str(uri), experiment, parent, dict(tags or {})

    def start(self, run_dir: Path, record: dict[str, Any], history: list[dict[str, Any]]) -> None:
        self.client = client(self.uri)
        self.dir = Path(run_dir)
        tags = {"harness.run_id": str(record.get("run_id", self.dir.name)), **self.tags}
        if self.parent:
            tags["mlflow.parentRunId"] = self.parent
        run = self.client.create_run(experiment_id(self.client, self.experiment),
                                     run_name=tags["harness.run_id"], tags=tags)
        self.run_id = run.info.run_id
        log_params(self.client, self.run_id, flat_config(record.get("config", {})))
        for row in history:
            self.log_epoch(int(row["epoch"]), row)

    def log_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        log_metrics(self.client, self.run_id, epoch_scalars(row), epoch)

    def finish(self, status: str, summary: dict[str, Any]) -> None:
        final = summary_scalars(summary)
        if final and status == "complete":
            log_metrics(self.client, self.run_id, final, int(summary.get("epochs_done") or 0))
        self.client.log_artifacts(self.run_id, str(self.dir))
        self.client.set_terminated(self.run_id, STATUS[status])
