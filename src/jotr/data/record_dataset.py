"""One reader's records as a torch dataset, and the per-sample generator it draws augmentation from.

:func:`sample_rng` makes every sample's randomness a pure function of ``(seed, epoch, index, stream)``;
:func:`split_key` reads the ``(epoch, index)`` keys of :class:`jotr.data.dataset.EpochSampler`. The training
mix (:mod:`jotr.data.mixing`) and the loader factory (:mod:`jotr.data.dataset`) both build on this module.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from jotr.data.pipeline import SamplePipeline, UnreadableImageError
from jotr.data.records import DatasetReader
from jotr.errors import InputError

logger = logging.getLogger(__name__)
MAX_SKIPPED_IN_A_ROW = 16  # training: more unreadable images in a row than this is an error


def sample_rng(seed: int, epoch: int, index: int, stream: int = 0) -> np.random.Generator:
    """The generator of one sample: a pure function of (seed, epoch, index, stream)."""
    entropy = [int(seed), int(epoch), int(index), int(stream)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def split_key(key: int | tuple[int, int], default_epoch: int) -> tuple[int, int]:
    """``index`` or ``(epoch, index)`` (from :class:`jotr.data.dataset.EpochSampler`) -> (epoch, index)."""
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
