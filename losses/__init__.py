"""Built-in losses; each module registers itself on import."""

from losses import ce, triplet  # noqa: F401
