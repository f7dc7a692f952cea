"""Helpers for architectures and the runner: the paper's initialisation, parameter count, and which
implementation a model ran (the architecture contract, ``ModelOutput``, is in ``harness.contracts``)."""

from __future__ import annotations

from torch import nn


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: Kaiming normal for convolutions, Xavier normal for dense layers."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, the counting rule of the paper's Table 2."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def implementation(model: nn.Module) -> dict[str, str | None]:
    """Which implementation a model's forward ran and, where a faster one was asked for but did not
    run, why: the model's own ``implementation()`` where it has one, else plain torch modules."""
    report = getattr(model, "implementation", None)
    return dict(report()) if callable(report) else {"implementation": "torch modules", "fallback": None}
