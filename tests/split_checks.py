"""The oracle the split tests check every split with (``from split_checks import shared_groups``)."""

from __future__ import annotations

import numpy as np

from harness.data.dataset import Dataset


def shared_groups(ds: Dataset, a: np.ndarray, b: np.ndarray) -> set[str]:
    """Groups with rows in both row sets: a leak, so empty for every split the harness makes."""
    group = ds.clips["group"].to_numpy()
    return set(group[np.asarray(a, dtype=np.int64)]) & set(group[np.asarray(b, dtype=np.int64)])
