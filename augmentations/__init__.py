"""Built-in augmentations; each module registers itself on import."""

from augmentations import device_ir, freq_mixstyle, mixup, roll, specaugment  # noqa: F401
