"""``--track tensorboard``: event files in ``results/runs/<id>/tb/`` (``tensorboard --logdir results/runs``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.tracking.values import confusion_figure, epoch_scalars, flat_config, summary_scalars


def check_installed() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("--track tensorboard needs the tensorboard package: pip install 'harness[tensorboard]'") from None


def hparam_value(value: Any) -> Any:
    """TensorBoard takes numbers, strings and booleans as hyper-parameters."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str)


class TensorBoardTracker:
    name = "tensorboard"

    def start(self, run_dir: Path, record: dict[str, Any], history: list[dict[str, Any]]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(run_dir) / "tb"
        # Written anew from the record at every start, so a resumed or re-reported run has one log.
        shutil.rmtree(self.dir, ignore_errors=True)
        self.writer = SummaryWriter(str(self.dir))
        self.config = record.get("config", {})
        self.last_epoch = 0
        self.writer.add_text("config", "```\n" + json.dumps(record, indent=2, default=str) + "\n```")
        for row in history:
            self.log_epoch(int(row["epoch"]), row)

    def log_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        for tag, value in epoch_scalars(row).items():
            self.writer.add_scalar(tag, value, epoch)
        self.last_epoch = epoch
        self.writer.flush()

    def finish(self, status: str, summary: dict[str, Any]) -> None:
        fig = confusion_figure(self.dir.parent) if status == "complete" else None
        if fig is not None:
            self.writer.add_figure("eval/confusion_matrix", fig, self.last_epoch, close=False)
        metrics = summary_scalars(summary)
        hparams = {k: hparam_value(v) for k, v in flat_config(self.config).items()}
        self.writer.add_hparams(hparams, metrics, run_name=".")
        self.writer.close()
