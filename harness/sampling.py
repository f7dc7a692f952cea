"""Batches for the triplet losses: every anchor has a positive and a negative in its batch.

Clips are paired within their scene (across domains for the cross-city loss), the pairs are
shuffled and packed ``batch_size / 2`` to a batch, and every batch holds at least two scenes.
Each epoch visits every training clip about once (a clip left without a partner is paired
with a random valid one, which is then seen twice), and its order is a pure function of
``(seed, epoch)``, so a run resumed at an epoch boundary draws the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from harness.errors import ConfigError

Pair = tuple[int, int]


def _plain(v):
    """numpy scalar → Python value, so messages read 'domain 3', not 'np.int64(3)'."""
    return v.item() if isinstance(v, np.generic) else v


class PairedBatchSampler(Sampler[list[int]]):
    """Index lists (positions into ``labels``) with a valid positive for every anchor.

    ``cross_domain=True``: pair partners share the scene and differ in domain (city or
    device); ``False``: they share the scene only. ``scene_names`` / ``domain_names`` only
    make error messages readable (the dataset's class and domain names).
    ``drop_last`` drops the final short batch of the shuffled pairs; in the rare extra
    batches made when one scene dominates (see ``_fix_single_scene``) a batch may be short.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, domains: Sequence | np.ndarray, batch_size: int,
                 cross_domain: bool, seed: int, drop_last: bool = False, *,
                 scene_names: Sequence[str] | None = None, domain_names: Sequence[str] | None = None):
        self.labels = np.asarray(labels)
        self.domains = np.asarray(domains)
        if self.labels.ndim != 1 or self.labels.shape != self.domains.shape:
            raise ConfigError(f"labels and domains must be 1-D and of equal length, got {self.labels.shape} and {self.domains.shape}")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 4 or batch_size % 2:
            raise ConfigError(f"paired batches need an even batch size >= 4 (pairs of two, two scenes), got {batch_size}")
        self.batch_size = int(batch_size)
        self.cross_domain = bool(cross_domain)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._scene_names = scene_names
        self._domain_names = domain_names
        self._cache: tuple[int, list[list[int]]] | None = None
        self.by_scene = {s: np.flatnonzero(self.labels == s) for s in np.unique(self.labels)}
        self._check()

    # -- validation -------------------------------------------------------------------------
    def _scene(self, s) -> str:
        names = self._scene_names
        s = _plain(s)
        return repr(names[s]) if names is not None and isinstance(s, int) and 0 <= s < len(names) else repr(s)

    def _domain(self, d) -> str:
        names = self._domain_names
        d = _plain(d)
        return repr(names[d]) if names is not None and isinstance(d, int) and 0 <= d < len(names) else repr(d)

    def _check(self) -> None:
        if len(self.by_scene) < 2:
            raise ConfigError(f"paired batches need at least two scenes in the training split (for negatives), got {len(self.by_scene)}")
        if self.cross_domain:
            bad = [(s, np.unique(self.domains[idx])) for s, idx in self.by_scene.items()]
            bad = [(s, d[0]) for s, d in bad if len(d) < 2]
            if bad:
                what = "; ".join(f"class {self._scene(s)} only in domain {self._domain(d)}" for s, d in bad)
                raise ConfigError(f"cross-domain triplets need every class in at least two domains of the training split: {what}")
        else:
            bad = [s for s, idx in self.by_scene.items() if len(idx) < 2]
            if bad:
                raise ConfigError(f"triplets need at least two training clips per scene: {', '.join(self._scene(s) for s in bad)} has one")

    # -- one epoch --------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _partner(self, i: int, rng: np.random.Generator) -> int:
        """A random valid partner of clip ``i`` (same scene, other domain if cross-domain)."""
        idx = self.by_scene[self.labels[i]]
        ok = idx[self.domains[idx] != self.domains[i]] if self.cross_domain else idx[idx != i]
        return int(rng.choice(ok))

    def _scene_pairs(self, idx: np.ndarray, rng: np.random.Generator) -> list[Pair]:
        if self.cross_domain:
            # Domains as contiguous blocks (largest first, the rest in random order), then
            # position i is paired with i + n//2: partners differ in domain unless one domain
            # holds more than half the clips; those clips get random partners below.
            groups = [rng.permutation(idx[self.domains[idx] == d]) for d in np.unique(self.domains[idx])]
            order = rng.permutation(len(groups))
            order = sorted(order, key=lambda g: -len(groups[g]))  # stable: ties keep the random order
            seq = np.concatenate([groups[g] for g in order])
            m = len(seq) // 2
            a, b = seq[:m], seq[m:2 * m]
            cross = self.domains[a] != self.domains[b]
            pairs = [(int(x), int(y)) for x, y in zip(a[cross], b[cross])]
            left = np.concatenate([a[~cross], b[~cross], seq[2 * m:]])
        else:
            seq = rng.permutation(idx)
            m = len(seq) // 2
            pairs = [(int(x), int(y)) for x, y in zip(seq[0:2 * m:2], seq[1:2 * m:2])]
            left = seq[2 * m:]
        pairs += [(int(i), self._partner(int(i), rng)) for i in left]
        return pairs

    def _fresh_pair(self, avoid_scene, rng: np.random.Generator) -> Pair:
        """A random valid pair from a scene other than ``avoid_scene``."""
        others = np.flatnonzero(self.labels != avoid_scene)
        i = int(rng.choice(others))
        return i, self._partner(i, rng)

    def _fix_single_scene(self, batches: list[list[Pair]], rng: np.random.Generator) -> None:
        """Give every batch a second scene: swap a pair with another batch, else add a fresh pair.

        A full batch gives up one of its pairs for the fresh one; given-up pairs are packed
        into extra batches at the end, so no clip is skipped even when one scene dominates.
        """
        scene = lambda p: self.labels[p[0]]  # noqa: E731
        half = self.batch_size // 2
        displaced: list[Pair] = []
        bi = 0
        while bi < len(batches) or displaced:
            if bi == len(batches):
                batches.append(displaced[:half])
                displaced = displaced[half:]
            batch = batches[bi]
            bi += 1
            s = scene(batch[0])
            if any(scene(p) != s for p in batch) or (len(batch) >= 2 and self._swap_in(batch, batches, s, rng)):
                continue
            if len(batch) == half:
                displaced.append(batch.pop())
            batch.append(self._fresh_pair(s, rng))

    def _swap_in(self, batch: list[Pair], batches: list[list[Pair]], s, rng: np.random.Generator) -> bool:
        """Swap ``batch[0]`` (scene ``s``) with another batch's pair of another scene, keeping that batch mixed."""
        scene = lambda p: self.labels[p[0]]  # noqa: E731
        for oi in rng.permutation(len(batches)):
            other = batches[oi]
            if other is batch:
                continue
            for j, p in enumerate(other):
                rest = {scene(q) for k, q in enumerate(other) if k != j} | {s}
                if scene(p) != s and len(rest) >= 2:
                    other[j], batch[0] = batch[0], p
                    return True
        return False

    def _plan(self, epoch: int) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        pairs: list[Pair] = []
        for s in sorted(self.by_scene):
            pairs += self._scene_pairs(self.by_scene[s], rng)
        pairs = [pairs[i] for i in rng.permutation(len(pairs))]
        half = self.batch_size // 2
        batches = [pairs[i:i + half] for i in range(0, len(pairs), half)]
        if self.drop_last and batches and len(batches[-1]) < half:
            batches.pop()
        self._fix_single_scene(batches, rng)
        plan = [[i for p in batch for i in p] for batch in batches]
        self._cache = (epoch, plan)
        return plan

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._plan(self.epoch)

    def __len__(self) -> int:
        return len(self._plan(self.epoch))
