"""Torch datasets over dataset readers + the sample pipeline, and the DataLoader factory.

Randomness (fixes official bug B8): every sample's augmentation comes from its own generator, derived from
``(seed, epoch, index)`` by :func:`sample_rng`, so results do not depend on the number of DataLoader workers
or on which worker loads a sample. The epoch travels with the index: :class:`EpochSampler` yields ``(epoch,
index)`` keys, so persistent workers (which keep the pipeline's per-record body-model cache) see the current
epoch; call :func:`set_loader_epoch` (or ``loader.sampler.set_epoch``) before each epoch. Plain integer
indices use the dataset's own ``set_epoch`` value. :func:`worker_init_fn` also seeds torch, numpy's global RNG
and ``random`` in each worker for any third-party code.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler

from jotr.data.collate import collate
from jotr.data.datasets import build_reader
from jotr.data.pipeline import SamplePipeline, UnreadableImageError
from jotr.data.records import DatasetReader
from jotr.errors import InputError

logger = logging.getLogger(__name__)
MAX_SKIPPED_IN_A_ROW = 16  # training: more unreadable images in a row than this is an error


def sample_rng(seed: int, epoch: int, index: int, stream: int = 0) -> np.random.Generator:
    """The generator of one sample: a pure function of (seed, epoch, index, stream)."""
    entropy = [int(seed), int(epoch), int(index), int(stream)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def worker_init_fn(worker_id: int) -> None:
    """Seed torch, numpy's global RNG and ``random`` of a DataLoader worker from its torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)


def split_key(key: int | tuple[int, int], default_epoch: int) -> tuple[int, int]:
    """``index`` or ``(epoch, index)`` (from :class:`EpochSampler`) -> (epoch, index)."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return int(default_epoch), int(key)


class RecordDataset(Dataset):
    """A reader's records through a :class:`SamplePipeline`; ``dataset[i]`` is one sample dict."""

    def __init__(self, reader: DatasetReader, pipeline: SamplePipeline, seed: int = 0) -> None:
        self.reader = reader
        self.pipeline = pipeline
        self.seed = int(seed)
        self.epoch = 0
        self.skipped_images: set[str] = set()  # training images that could not be decoded (this process)
        self.name = reader.name
        self.body_model = reader.records[0].body_model if reader.records else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.reader.records)

    def sample(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """Sample ``index``. Training: a record whose image cannot be decoded (empty or corrupt file) is
        skipped -- the next records are tried in order (deterministic, so resumes see the same stream),
        and each such file is counted in ``skipped_images`` and logged once per process; more than
        ``MAX_SKIPPED_IN_A_ROW`` in a row is an InputError."""
        records = self.reader.records
        if not self.pipeline.train:
            return self.pipeline(records[index], rng)
        tries = min(MAX_SKIPPED_IN_A_ROW + 1, len(records))
        for attempt in range(tries):
            record = records[(index + attempt) % len(records)]
            try:
                return self.pipeline(record, rng)
            except UnreadableImageError as exc:
                if str(record.image_path) not in self.skipped_images:
                    self.skipped_images.add(str(record.image_path))
                    logger.warning(
                        "skipping %s (%d unreadable image(s) in %s so far)",
                        exc,
                        len(self.skipped_images),
                        self.name,
                    )
        raise InputError(
            f"dataset {self.name}: {tries} unreadable images in a row from record "
            f"{index}; check the dataset files"
        )

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = split_key(key, self.epoch)
        return self.sample(index, sample_rng(self.seed, epoch, index))


class EpochSampler(Sampler):
    """Wraps an index sampler and yields ``(epoch, index)``; ``set_epoch`` also reaches the base sampler."""

    def __init__(self, base: Sampler) -> None:
        self.base = base
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((epoch, int(i)) for i in self.base)

    def __len__(self) -> int:
        return len(self.base)


def build_dataset(
    spec: Any,
    cfg: Any,
    train: bool,
    body_models: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> RecordDataset:
    """Reader from the registry (``spec.name``) + the shared pipeline (the reader logs its summary)."""
    reader = build_reader(spec)
    if len(reader) == 0:
        raise InputError(
            f"dataset {spec.name} (root '{spec.root}', split '{spec.split}') has no usable persons: "
            f"{reader.summary()}"
        )
    pipeline = SamplePipeline(cfg, train=train, body_models=body_models)
    return RecordDataset(reader, pipeline, seed=cfg.train.seed if seed is None else seed)


def build_train_dataset(cfg: Any, body_models: Mapping[str, Any] | None = None, seed: int | None = None):
    """The paper's training mix of ``cfg.data.train_3d`` and ``cfg.data.train_2d`` (:class:`MixedDataset`)."""
    from jotr.data.mixing import MixedDataset

    if not cfg.data.train_3d and not cfg.data.train_2d:
        raise InputError("no training datasets configured (data.train_3d and data.train_2d are empty)")
    seed = cfg.train.seed if seed is None else seed
    group_3d = [build_dataset(s, cfg, True, body_models, seed) for s in cfg.data.train_3d]
    group_2d = [build_dataset(s, cfg, True, body_models, seed) for s in cfg.data.train_2d]
    return MixedDataset(group_3d, group_2d, ratio_3d=cfg.data.ratio_3d, seed=seed)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    train: bool,
    num_workers: int = 0,
    sampler: Sampler | None = None,
    seed: int = 0,
    drop_last: bool | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """DataLoader with :func:`collate`, :func:`worker_init_fn`, persistent workers and epoch-aware keys.

    Without a ``sampler``, training shuffles with a permutation seeded by (seed, epoch)
    (:class:`jotr.data.mixing.DistributedMixSampler` with one replica) and evaluation reads in order. For DDP
    pass a ``torch.utils.data.DistributedSampler`` or a :class:`~jotr.data.mixing.DistributedMixSampler`.
    The sampler is wrapped in an :class:`EpochSampler`; call :func:`set_loader_epoch` before each epoch.
    """
    from jotr.data.mixing import DistributedMixSampler

    if sampler is None:
        if train:
            sampler = DistributedMixSampler(dataset, 1, 0, seed=seed, shuffle=True)
        else:
            sampler = SequentialSampler(dataset)
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(sampler),
        num_workers=num_workers,
        collate_fn=collate,
        worker_init_fn=worker_init_fn,
        generator=generator,
        drop_last=bool(train) if drop_last is None else drop_last,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def set_epoch(objs: Sequence[Any], epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on every object that has it (datasets, samplers)."""
    for obj in objs:
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Set the epoch of a loader made by :func:`make_loader` (its sampler and its dataset)."""
    set_epoch([loader.sampler, loader.dataset], epoch)
