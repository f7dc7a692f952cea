"""The built-in dataset plugins; each module registers itself on import."""

from harness.data import esc50, manifest, tau, tau2022, urbansound8k  # noqa: F401
from harness.data.synthetic import plugin  # noqa: F401
