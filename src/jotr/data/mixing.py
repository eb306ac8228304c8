"""The paper's multi-dataset training mix (official ``MultipleDatasets``, made deterministic).

Datasets of the 3D group (Human3.6M, MuCo) are concatenated, so are those of the 2D group (COCO, CrowdPose);
the two groups are then mixed with a share ``ratio_3d`` of 3D samples (paper: 1:1). Epoch length follows the
official ``make_same_len``: the larger group is used exactly once and the smaller one is cycled, ``length =
ceil(max(n3 / r, n2 / (1 - r)))`` (= 2 x max(n3, n2) for r = 0.5). Indices below the 3D share map to the 3D
group, the rest to the 2D group; positions beyond a group's size are filled from a permutation of that group
seeded by (seed, epoch) -- the official code used an unseeded ``random.randint``.

The dataset is map-style and deterministic given (seed, epoch, index), so it works with any sampler, including
``torch.utils.data.DistributedSampler`` (call ``set_epoch`` on both the sampler and this dataset).
:class:`DistributedMixSampler` is a shuffling, rank-aware sampler that needs no process group.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Sampler

from jotr.data.record_dataset import RecordDataset, sample_rng, split_key
from jotr.errors import InputError

logger = logging.getLogger(__name__)

MIX_STREAM = 1  # rng stream of mixed samples (distinct from RecordDataset's own stream 0)
PERM_STREAM = 2


class _Concat:
    """Concatenation of record datasets: global index -> (dataset, local index)."""

    def __init__(self, datasets: Sequence[RecordDataset]) -> None:
        self.datasets = list(datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[RecordDataset, int]:
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.datasets[k], int(index - self.offsets[k])


class MixedDataset(Dataset):
    def __init__(
        self,
        group_3d: Sequence[RecordDataset],
        group_2d: Sequence[RecordDataset],
        ratio_3d: float = 0.5,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= ratio_3d <= 1.0:
            raise InputError(f"data.ratio_3d must be in [0, 1], got {ratio_3d}")
        models = {d.body_model for d in list(group_3d) + list(group_2d) if d.body_model is not None}
        if len(models) > 1:
            raise InputError(
                f"training datasets use different body models {sorted(models)}; a batch needs one"
            )
        self.g3, self.g2 = _Concat(group_3d), _Concat(group_2d)
        n3, n2 = len(self.g3), len(self.g2)
        if n3 == 0 and n2 == 0:
            raise InputError("the training mix is empty")
        r = ratio_3d
        if n3 == 0 or n2 == 0:
            if 0.0 < r < 1.0:
                logger.warning(
                    "only the %s group has data: data.ratio_3d=%.2f is ignored", "3D" if n3 else "2D", r
                )
            r = 1.0 if n3 else 0.0
        if r == 1.0 and n3 == 0 or r == 0.0 and n2 == 0:
            raise InputError(f"data.ratio_3d={ratio_3d} selects an empty group")
        if r == 1.0:
            self.length, self.n3 = len(self.g3), len(self.g3)
        elif r == 0.0:
            self.length, self.n3 = len(self.g2), 0
        else:
            self.length = int(math.ceil(max(n3 / r, n2 / (1.0 - r)) - 1e-9))
            self.n3 = int(round(self.length * r))
        self.seed = int(seed)
        self.epoch = 0
        self._perm_cache: dict[tuple[int, int], np.ndarray] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for group in (self.g3, self.g2):
            for d in group.datasets:
                d.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def _cycled(self, group: int, size: int, position: int, epoch: int) -> int:
        """Index within a group for a position of the epoch (in order, then a seeded permutation)."""
        if position < size:
            return position
        key = (group, epoch)
        if key not in self._perm_cache:
            self._perm_cache = {k: v for k, v in self._perm_cache.items() if k[1] == epoch}
            self._perm_cache[key] = sample_rng(self.seed, epoch, group, PERM_STREAM).permutation(size)
        return int(self._perm_cache[key][(position - size) % size])

    def locate(self, index: int, epoch: int | None = None) -> tuple[RecordDataset, int]:
        """(dataset, local index) of a mixed index in an epoch (default: the current one)."""
        epoch = self.epoch if epoch is None else int(epoch)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a mix of length {self.length}")
        if index < self.n3:
            return self.g3.locate(self._cycled(3, len(self.g3), index, epoch))
        return self.g2.locate(self._cycled(2, len(self.g2), index - self.n3, epoch))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = split_key(key, self.epoch)
        dataset, local = self.locate(index, epoch)
        return dataset.sample(local, sample_rng(self.seed, epoch, index, MIX_STREAM))


class DistributedMixSampler(Sampler[int]):
    """Shuffled indices of one rank: a permutation seeded by (seed, epoch), padded to a multiple of the world
    size, rank r takes positions r, r + W, ... (like DistributedSampler; no process group needed)."""

    def __init__(
        self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True
    ) -> None:
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise InputError(f"invalid rank {rank} for {num_replicas} replicas")
        self.n, self.replicas, self.rank, self.seed, self.shuffle = (
            len(dataset),
            num_replicas,
            rank,
            seed,
            shuffle,
        )
        self.epoch = 0
        self.num_samples = int(math.ceil(self.n / num_replicas))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        order = (
            sample_rng(self.seed, self.epoch, 0, PERM_STREAM + 1).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        total = self.num_samples * self.replicas
        order = np.concatenate([order, order[: total - self.n]]) if total > self.n else order
        return iter(order[self.rank : total : self.replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples
