"""The `Dataset` object: seeded, fixed-shape numpy batches from random-access sources.

A source is anything with ``len(source)`` and ``source[i] -> {"image", "label", ...}``
(an in-memory `ArraySource`, a lazily generated one, or a ``tfds.data_source``). Each
split is a source plus the indices of its examples. Batches are read through
``grain.MapDataset`` (record access by item, optional host threads), then
preprocessed a whole batch at a time by an `augment.Preprocessor`.

Synopsis:
    ds = Dataset(info, {"train": Split(src, train_idx), "validation": ...,
                        "test": Split(test_src, test_idx)}, preprocessor, pixel_scale=1/255)
    for batch in ds.train_batches(seed=0, batch_size=128):   # infinite
        ...   # {"image": f32 [B,H,W,C], "label": i32 [B], "mask": f32 [B] of ones}
    for batch in ds.eval_batches("test", batch_size=500):     # each example once
        ...   # last batch zero-padded, mask 1 for real examples and 0 for padding
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grain
import numpy as np

from amla_jax.data.augment import Preprocessor
from amla_jax.data.base import DataConfig, DataError, DatasetInfo

Batch = dict[str, np.ndarray]
Record = Mapping[str, Any]
EVAL_SPLITS = ("validation", "test", "train")


class RecordSource(Protocol):
    """Random access to examples; records hold at least ``image`` and ``label``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Record: ...


class ArraySource:
    """In-memory images [N, H, W, C] and labels [N] as a `RecordSource`."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Record:
        return {"image": self.images[index], "label": self.labels[index]}


class _IndexedSource:
    """A view of ``source`` through ``indices``.

    Only item access is offered: the tfds mock's ``__getitems__`` raises TypeError, and
    grain then falls back to reading one record at a time.
    """

    def __init__(self, source: RecordSource, indices: np.ndarray):
        self._source = source
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int) -> Record:
        return self._source[int(self._indices[index])]


@dataclass(frozen=True)
class Split:
    """The examples ``indices`` of ``source`` that form one split."""

    source: RecordSource
    indices: np.ndarray


def _collate(records: Sequence[Record], pixel_scale: float) -> Batch:
    images = np.stack([np.asarray(r["image"]) for r in records]).astype(np.float32)
    labels = np.asarray([r["label"] for r in records], dtype=np.int32)
    return {"image": images * np.float32(pixel_scale), "label": labels}


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise DataError(f"batch_size must be a positive int, got {batch_size!r}")


class Dataset:
    """A loaded dataset: metadata plus seeded train and fixed-order eval batch streams.

    Args:
        info: Metadata; ``info.image_shape`` must match the preprocessor's output.
        splits: "train", "validation" and "test" `Split` s (validation may be empty).
        preprocessor: Batch-level train/eval pipeline.
        pixel_scale: Factor that maps stored pixel values to [0, 1].
        decode: Optional per-record function applied after reading (e.g. resizing
            variable-size images to a fixed canvas).
        num_threads: Host threads for reading and preprocessing (0: caller's thread).
    """

    def __init__(
        self,
        info: DatasetInfo,
        splits: Mapping[str, Split],
        preprocessor: Preprocessor,
        *,
        pixel_scale: float,
        decode: Callable[[Record], Record] | None = None,
        num_threads: int = 0,
    ):
        self.info = info
        self.preprocessor = preprocessor
        self._splits = dict(splits)
        self._collate = functools.partial(_collate, pixel_scale=pixel_scale)
        self._decode = decode
        self._num_threads = num_threads

    def __repr__(self) -> str:
        return f"Dataset({self.info})"

    def indices(self, split: str) -> np.ndarray:
        """Returns the indices of ``split``'s examples in its source (a copy).

        "train" and "validation" index the same source (the training split of the
        original dataset), so they never overlap; "test" may have a source of its own.
        """
        if split not in EVAL_SPLITS:
            raise DataError(f"unknown split {split!r}; valid splits: {', '.join(EVAL_SPLITS)}")
        return self._splits[split].indices.copy()

    def train_batches(self, seed: int, batch_size: int) -> Iterator[Batch]:
        """Returns an infinite stream of augmented training batches.

        Each epoch is a fresh permutation drawn from ``(seed, epoch)``; the incomplete
        last batch of an epoch is dropped. Augmentation of batch i of an epoch is
        drawn from ``(seed, epoch, i)``, so the stream depends only on ``seed``.

        Args:
            seed: Non-negative run seed.
            batch_size: Examples per batch, at most ``info.num_train``.

        Returns:
            Iterator of ``{"image": f32 [B,H,W,C], "label": i32 [B], "mask": f32 [B]}``.
        """
        _check_batch_size(batch_size)
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise DataError(f"seed must be a non-negative int, got {seed!r}")
        if batch_size > self.info.num_train:
            raise DataError(
                f"batch_size {batch_size} exceeds the {self.info.num_train} training "
                f"examples of {self.info.name!r}"
            )
        return self._train_stream(int(seed), batch_size)

    def train_batches_at(
        self, positions: np.ndarray, batch_size: int, seed: Sequence[int]
    ) -> Iterator[Batch]:
        """One pass over the training examples at ``positions`` (indices into the training
        split, in that order), augmented like `train_batches`, the incomplete last batch
        dropped. The one-shot searches split the training split into two halves and walk
        each in their own order; batch i is augmented with draws from ``(*seed, i)``.

        Returns:
            Iterator of ``{"image": f32 [B,H,W,C], "label": i32 [B], "mask": f32 [B]}``.
        """
        _check_batch_size(batch_size)
        split = self._splits["train"]
        records = self._records(split.source, split.indices[np.asarray(positions)])
        batches = records.batch(batch_size, drop_remainder=True, batch_fn=self._collate)
        seed = [int(s) for s in seed]

        def augment(index: int, batch: Batch) -> Batch:
            rng = np.random.default_rng([*seed, index])
            images = self.preprocessor.train(batch["image"], rng)
            return {
                "image": images,
                "label": batch["label"],
                "mask": np.ones(len(images), np.float32),
            }

        return self._iterate(batches.map_with_index(augment))

    def eval_batches(self, split: str, batch_size: int) -> Iterator[Batch]:
        """Returns one pass over ``split`` in a fixed order, without augmentation.

        Every example appears exactly once; the last batch is zero-padded to
        ``batch_size`` so that shapes never change, and ``mask`` marks real examples.

        Args:
            split: "validation", "test" or "train" (un-augmented).
            batch_size: Examples per batch.

        Returns:
            Iterator of ``{"image": f32 [B,H,W,C], "label": i32 [B], "mask": f32 [B]}``.
        """
        _check_batch_size(batch_size)
        if split not in EVAL_SPLITS:
            raise DataError(f"unknown split {split!r}; valid splits: {', '.join(EVAL_SPLITS)}")
        chosen = self._splits[split]
        if len(chosen.indices) == 0:
            raise DataError(
                f"the {split!r} split of {self.info.name!r} is empty "
                "(set DataConfig.validation_size > 0 to carve a validation split)"
            )
        records = self._records(chosen.source, chosen.indices)
        batches = records.batch(batch_size, batch_fn=self._collate)
        return self._iterate(batches.map(functools.partial(self._finish_eval, batch_size)))

    def _train_stream(self, seed: int, batch_size: int) -> Iterator[Batch]:
        split = self._splits["train"]
        for epoch in itertools.count():
            permutation = np.random.default_rng([seed, epoch, 0]).permutation(len(split.indices))
            records = self._records(split.source, split.indices[permutation])
            batches = records.batch(batch_size, drop_remainder=True, batch_fn=self._collate)
            yield from self._iterate(
                batches.map_with_index(functools.partial(self._augment, seed, epoch))
            )

    def _records(self, source: RecordSource, indices: np.ndarray) -> grain.MapDataset:
        records = grain.MapDataset.source(_IndexedSource(source, indices))
        return records.map(self._decode) if self._decode else records

    def _augment(self, seed: int, epoch: int, index: int, batch: Batch) -> Batch:
        rng = np.random.default_rng([seed, epoch, 1, index])
        images = self.preprocessor.train(batch["image"], rng)
        mask = np.ones(len(images), np.float32)
        return {"image": images, "label": batch["label"], "mask": mask}

    def _finish_eval(self, batch_size: int, batch: Batch) -> Batch:
        images = self.preprocessor.eval(batch["image"])
        missing = batch_size - len(images)
        mask = np.concatenate([np.ones(len(images)), np.zeros(missing)]).astype(np.float32)
        pad = [(0, missing)] + [(0, 0)] * (images.ndim - 1)
        return {
            "image": np.pad(images, pad),
            "label": np.pad(batch["label"], (0, missing)),
            "mask": mask,
        }

    def _iterate(self, batches: grain.MapDataset) -> Iterator[Batch]:
        if self._num_threads == 0:
            return (batches[i] for i in range(len(batches)))
        options = grain.ReadOptions(
            num_threads=self._num_threads, prefetch_buffer_size=2 * self._num_threads
        )
        return iter(batches.to_iter_dataset(options))


def build_dataset(
    cfg: DataConfig,
    *,
    num_classes: int,
    decoded_shape: tuple[int, int, int],
    splits: Mapping[str, Split],
    pixel_scale: float,
    decode: Callable[[Record], Record] | None = None,
    default_image_size: int = 0,
    default_crop_size: int = 0,
) -> Dataset:
    """Resolves the sizes in ``cfg`` and assembles a `Dataset`.

    Args:
        cfg: The dataset config.
        num_classes: Number of label classes.
        decoded_shape: (H, W, C) of a record's image after ``decode``.
        splits: "train", "validation" and "test" splits.
        pixel_scale: Factor mapping stored pixel values to [0, 1].
        decode: Optional per-record function, see `Dataset`.
        default_image_size: Canvas size when ``cfg.image_size`` is 0.
        default_crop_size: Output size when ``cfg.crop_size`` is 0 (0: the decoded size).

    Returns:
        The dataset, with ``info.image_shape`` the preprocessed shape.
    """
    height, width, channels = decoded_shape
    crop = cfg.crop_size or default_crop_size
    preprocessor = Preprocessor(
        image_size=cfg.image_size or default_image_size,
        crop_hw=(crop, crop) if crop else (height, width),
        random_crop=cfg.random_crop,
        crop_padding=cfg.crop_padding,
        flip=cfg.flip,
        cutout=cfg.cutout,
        brightness=cfg.brightness,
        contrast=cfg.contrast,
        standardize=cfg.standardize,
    )
    info = DatasetInfo(
        name=cfg.name,
        num_classes=num_classes,
        image_shape=(*preprocessor.output_hw((height, width)), channels),
        num_train=len(splits["train"].indices),
        num_validation=len(splits["validation"].indices),
        num_test=len(splits["test"].indices),
    )
    return Dataset(
        info,
        splits,
        preprocessor,
        pixel_scale=pixel_scale,
        decode=decode,
        num_threads=cfg.num_threads,
    )
