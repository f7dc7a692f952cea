"""Optimisers and learning-rate schedules: the lr sequence per step, and state round trips."""

from __future__ import annotations

import math

import pytest
import torch

from harness.errors import ConfigError
from harness.runner.config import RunConfig
from harness.runner.optim import build_optimizer, build_scheduler


def lrs(cfg: RunConfig, steps_per_epoch: int, n: int | None = None) -> list[float]:
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(cfg, model.parameters())
    sched = build_scheduler(cfg, opt, steps_per_epoch)
    out = []
    for _ in range(n or cfg.epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return out


def test_warmup_then_cosine_sequence() -> None:
    cfg = RunConfig(epochs=4, lr=0.1, schedule="cosine", warmup_epochs=1).resolved()
    w, total = 5, 20
    expected = [0.1 * (1 / w + (1 - 1 / w) * s / w) for s in range(w)]
    expected += [0.1 * (1 + math.cos(math.pi * (s - w) / (total - w))) / 2 for s in range(w, total)]
    assert lrs(cfg, 5) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_step_and_constant_sequences() -> None:
    step = lrs(RunConfig(epochs=4, lr=1.0, schedule="step").resolved(), 2)
    assert step == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lrs(RunConfig(epochs=2, lr=0.3).resolved(), 3) == [0.3] * 6  # the paper's constant Adam
    assert build_scheduler(RunConfig(epochs=2, lr=0.3).resolved(), torch.optim.Adam(torch.nn.Linear(1, 1).parameters()), 3) is None
    warm_const = lrs(RunConfig(epochs=2, lr=1.0, warmup_epochs=1).resolved(), 2)
    assert warm_const == pytest.approx([0.5, 0.75, 1.0, 1.0])


def test_optimizers_and_weight_decay() -> None:
    p = torch.nn.Linear(2, 2).parameters
    assert isinstance(build_optimizer(RunConfig(optimizer="adamw", weight_decay=1e-4, lr=5e-3).resolved(), p()), torch.optim.AdamW)
    sgd = build_optimizer(RunConfig(optimizer="sgd", lr=0.1).resolved(), p())
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    adam = build_optimizer(RunConfig().resolved(), p())
    assert type(adam) is torch.optim.Adam and adam.param_groups[0]["weight_decay"] == 0.0
    for bad in ({"optimizer": "lamb"}, {"schedule": "linear"}, {"weight_decay": -1.0}, {"epochs": 2, "warmup_epochs": 3.0}):
        with pytest.raises(ConfigError):
            RunConfig(**bad).resolved()


def test_scheduler_state_resumes_the_same_sequence() -> None:
    cfg = RunConfig(epochs=3, lr=0.1, schedule="cosine", warmup_epochs=1, optimizer="adamw", weight_decay=1e-4).resolved()
    full = lrs(cfg, 4)
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(cfg, model.parameters())
    sched = build_scheduler(cfg, opt, 4)
    for _ in range(6):
        opt.step()
        sched.step()
    saved = (opt.state_dict(), sched.state_dict())
    opt2 = build_optimizer(cfg, torch.nn.Linear(2, 2).parameters())
    sched2 = build_scheduler(cfg, opt2, 4)
    opt2.load_state_dict(saved[0])
    sched2.load_state_dict(saved[1])
    rest = []
    for _ in range(6):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert rest == pytest.approx(full[6:], rel=1e-12)
