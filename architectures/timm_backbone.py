"""Any timm image model as an ASC backbone: ``--arch timm/<model>`` (e.g. ``timm/resnet18``).

The model is built without pretrained weights (the harness runs offline) and without its
classifier; its pooled features are the triplet embedding, a Linear layer the classifier.
Extra options are passed to ``timm.create_model`` (e.g. ``drop_rate``, ``img_size``).
"""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import nn

from harness.errors import ConfigError
from harness.contracts import ModelOutput
from harness.model import init_weights
from harness.registry import register_architecture


class TimmClassifier(nn.Module):
    """timm backbone (``num_classes=0``: pooled features) followed by a Linear classifier."""

    def __init__(self, backbone: nn.Module, n_classes: int):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(int(backbone.num_features), n_classes)
        init_weights(self.classifier)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        emb = self.backbone(x).flatten(1)
        return ModelOutput(self.classifier(emb), emb, None)


def resolve_name(model_name: str) -> str:
    """The timm model name, or a one-line ConfigError with the closest names timm knows."""
    import timm

    if timm.is_model(model_name):
        return model_name
    close = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join('timm/' + c for c in close)}?" if close else ""
    raise ConfigError(f"timm has no model {model_name!r}{hint} (see timm.list_models())")


@register_architecture("timm/", "any timm image model as backbone + Linear classifier, e.g. timm/resnet18 (no pretrained weights)", prefix=True)
def timm_backbone(model_name: str, n_mels: int, n_frames: int, in_channels: int = 2, n_classes: int = 10,
                  **options: Any) -> nn.Module:
    import timm

    name = resolve_name(model_name)
    try:
        backbone = timm.create_model(name, pretrained=False, in_chans=in_channels, num_classes=0, **options)
    except TypeError as exc:  # an option the model does not take
        raise ConfigError(f"timm/{name}: {exc}") from None
    return TimmClassifier(backbone, n_classes)
