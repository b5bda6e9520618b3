"""Configuration, metadata and split carving shared by every dataset.

`DataConfig` is the Hydra structured-config schema of the ``dataset`` group; it is
mutable on purpose (overrides must work) and is checked by `check_config` when a
dataset is loaded. `DatasetInfo` is the frozen description a model needs.

Synopsis:
    cfg = DataConfig(name="cifar10", random_crop=True, crop_padding=4, flip=True)
    check_config(cfg)                       # DataError naming the bad field
    pool = stratified_order(labels, split_seed=0)   # or permuted_order(n, 0)
    train_idx, val_idx = carve_validation(pool, cfg.validation_size)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from amla_jax.errors import UserError


class DataError(UserError):
    """A dataset cannot be loaded or read as configured; the message says how to fix it."""


@dataclass
class DataConfig:
    """Schema of the ``dataset`` config group.

    Geometry: each image is first centre zero-padded/cropped to ``image_size`` (AMLA's
    "pad size"; for ``imagenet2012`` the shorter side is resized to it and the centre
    square kept), then cropped to ``crop_size``: at random when training with
    ``random_crop`` (after padding each side by ``crop_padding``), at the centre
    otherwise and always for evaluation. So ``random_crop=True, crop_padding=4`` is the
    standard CIFAR "pad 4, crop 32", and AMLA's ``image_size: 32`` on CIFAR means no jitter.

    Attributes:
        name: Registry name, see ``amla_jax.data.DATASETS``.
        data_dir: tensorflow-datasets data dir; None uses ``$TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``.
        validation_size: Held out of the training split as validation: a fraction when
            below 1, a count when 1 or more, none when 0.
        image_size: Canvas size before cropping (0: native size; ImageNet: 256).
        crop_size: Output size (0: native size; ImageNet: 224).
        random_crop: Random (train) instead of centre crop to ``crop_size``.
        crop_padding: Zero padding on each side before the random crop.
        flip: Random horizontal flips (train only).
        cutout: Side of a zero square per training image, centre uniform over the
            image and clipped at the border (DeVries & Taylor); 0 disables.
        brightness: Max random brightness delta on the [0, 1] scale (AMLA: 63/255).
        contrast: Random contrast factor drawn from [1 - contrast, 1 + contrast]
            (AMLA: 0.8).
        standardize: Per-image standardisation, ``(x - mean) / max(std, 1/sqrt(N))``.
        num_examples: ``synthetic``: total number of examples (0: 1280); other datasets:
            cap on the training pool before validation is carved (0: no cap).
        split_seed: Seed of the fixed test/validation carving, independent of the run seed.
        synthetic_shape: ``synthetic`` image shape [H, W, C].
        synthetic_num_classes: ``synthetic`` number of classes.
        num_threads: Host threads reading and preprocessing batches (0: caller's thread).
    """

    name: str = "digits"
    data_dir: str | None = None
    validation_size: float = 0.1
    image_size: int = 0
    crop_size: int = 0
    random_crop: bool = False
    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0
    brightness: float = 0.0
    contrast: float = 0.0
    standardize: bool = True
    num_examples: int = 0
    split_seed: int = 0
    synthetic_shape: list[int] = field(default_factory=lambda: [32, 32, 3])
    synthetic_num_classes: int = 10
    num_threads: int = 2


@dataclass(frozen=True)
class DatasetInfo:
    """What a model and a training loop need to know about a loaded dataset.

    Attributes:
        name: Registry name.
        num_classes: Number of label classes.
        image_shape: (H, W, C) of the images in every batch, after preprocessing.
        num_train: Examples in the training split (after validation was carved out).
        num_validation: Examples in the validation split.
        num_test: Examples in the test split.
    """

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    num_train: int
    num_validation: int
    num_test: int


_NON_NEGATIVE_INTS = ("image_size", "crop_size", "crop_padding", "cutout", "num_examples")


def check_config(cfg: DataConfig) -> None:
    """Raises `DataError` naming the first invalid field of ``cfg``."""
    for name in _NON_NEGATIVE_INTS + ("split_seed", "num_threads"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DataError(f"DataConfig.{name} must be a non-negative int, got {value!r}")
    if cfg.validation_size < 0:
        raise DataError(f"DataConfig.validation_size must be >= 0, got {cfg.validation_size}")
    if cfg.validation_size >= 1 and cfg.validation_size != int(cfg.validation_size):
        raise DataError(
            f"DataConfig.validation_size must be a fraction < 1 or a whole count, "
            f"got {cfg.validation_size}"
        )
    if not 0 <= cfg.brightness:
        raise DataError(f"DataConfig.brightness must be >= 0, got {cfg.brightness}")
    if not 0 <= cfg.contrast <= 1:
        raise DataError(f"DataConfig.contrast must be in [0, 1], got {cfg.contrast}")
    shape = list(cfg.synthetic_shape)
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise DataError(f"DataConfig.synthetic_shape must be [H, W, C] >= 1, got {shape}")
    if cfg.synthetic_num_classes < 1:
        raise DataError(
            f"DataConfig.synthetic_num_classes must be >= 1, got {cfg.synthetic_num_classes}"
        )


def permuted_order(num: int, split_seed: int) -> np.ndarray:
    """Returns a fixed random permutation of ``range(num)`` drawn from ``split_seed``."""
    return np.random.default_rng([split_seed, 0]).permutation(num)


def stratified_order(labels: np.ndarray, split_seed: int) -> np.ndarray:
    """Orders indices so that every prefix is (close to) stratified by label.

    Each example gets the key ``(rank within its class + u) / class size`` with its rank
    from a random shuffle and ``u ~ U[0, 1)``; sorting by that key interleaves the
    classes in proportion, so the first k indices hold about ``k * p_c`` of class c.

    Args:
        labels: Integer labels, shape [N].
        split_seed: Seed of the fixed shuffle.

    Returns:
        A permutation of ``range(N)``, int64.
    """
    rng = np.random.default_rng([split_seed, 1])
    labels = np.asarray(labels)
    shuffled = rng.permutation(len(labels))
    keys = np.empty(len(labels))
    for label in np.unique(labels):
        members = shuffled[labels[shuffled] == label]
        jitter = rng.random(len(members))
        keys[members] = (np.arange(len(members)) + jitter) / len(members)
    return np.argsort(keys, kind="stable")


def validation_count(validation_size: float, pool_size: int) -> int:
    """Converts ``DataConfig.validation_size`` into a number of examples."""
    if validation_size >= 1:
        count = int(validation_size)
    else:
        count = int(round(validation_size * pool_size))
    if count >= pool_size:
        raise DataError(
            f"DataConfig.validation_size={validation_size} leaves no training examples "
            f"out of {pool_size}"
        )
    return count


def carve_validation(
    pool: np.ndarray, validation_size: float, cap: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Splits an ordered pool of indices into training and validation indices.

    Args:
        pool: Indices in a fixed random (or stratified) order, see `permuted_order`.
        validation_size: ``DataConfig.validation_size``.
        cap: Keep only the first ``cap`` indices of the pool first (0: all).

    Returns:
        ``(train, validation)`` index arrays, each sorted ascending and disjoint.
    """
    if cap:
        pool = pool[:cap]
    count = validation_count(validation_size, len(pool))
    return np.sort(pool[count:]), np.sort(pool[:count])
