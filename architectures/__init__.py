"""Built-in architectures; each module registers itself on import."""

from architectures import dcase2024_baseline, dcase_baseline, fcnn, subspectralnet, timm_backbone  # noqa: F401
