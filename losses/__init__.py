"""Built-in losses; each module registers itself on import."""

from losses import ce, kd, triplet  # noqa: F401
