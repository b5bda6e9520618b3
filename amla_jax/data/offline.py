"""Datasets that need no download: scikit-learn's ``digits`` and ``synthetic`` images.

``digits`` is the offline default: 1797 grey 8x8 images of 10 classes, bundled with
scikit-learn. A fixed, stratified 20% test split is carved with ``split_seed`` (so the
test set never changes with the run seed), then validation from the rest.

``synthetic`` draws images of any shape for benchmarks and smoke tests. Each class has
a fixed low-frequency template and each image adds its own noise, so a network can
learn it; images are generated on demand from ``(split_seed, index)``, so even
ImageNet-shaped sets cost no memory.

Synopsis:
    ds = load_digits(DataConfig(name="digits"))
    ds.info   # DatasetInfo(name='digits', num_classes=10, image_shape=(8, 8, 1), ...)
    ds = load_synthetic(DataConfig(name="synthetic", synthetic_shape=[32, 32, 3]))
"""

from __future__ import annotations

import gzip
import importlib.util
import math
from pathlib import Path

import numpy as np

from amla_jax.data.base import DataConfig, carve_validation, check_config, stratified_order
from amla_jax.data.dataset import (
    ArraySource,
    Dataset,
    Record,
    RecordSource,
    Split,
    build_dataset,
)

TEST_FRACTION = 0.2
SYNTHETIC_DEFAULT_EXAMPLES = 1280
_TEMPLATE_SIDE = 4


def _carve_splits(
    cfg: DataConfig, source: RecordSource, labels: np.ndarray, cap: int
) -> dict[str, Split]:
    """Carves the fixed stratified test split, then validation, from one labelled pool."""
    order = stratified_order(labels, cfg.split_seed)
    num_test = math.ceil(TEST_FRACTION * len(order))
    # The rest of a stratified order is still stratified in every prefix.
    train, validation = carve_validation(order[num_test:], cfg.validation_size, cap)
    return {
        "train": Split(source, train),
        "validation": Split(source, validation),
        "test": Split(source, np.sort(order[:num_test])),
    }


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(uint8 images (1797, 8, 8, 1), int32 labels)``.

    Read from the CSV that scikit-learn bundles, as its ``load_digits`` does, but
    without importing scikit-learn: that import (SciPy with it) took 1.5-3 s of every
    run's start on a 2-core CPU (experiments/bench/README.md). Where the file is not
    found (another scikit-learn layout), scikit-learn's own loader is used.
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package, imports nothing
    folders = (spec and spec.submodule_search_locations) or []
    paths = [Path(f) / "datasets" / "data" / "digits.csv.gz" for f in folders]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        from sklearn.datasets import load_digits as sklearn_load_digits  # noqa: PLC0415

        bunch = sklearn_load_digits()
        return bunch.images.astype(np.uint8)[..., None], bunch.target.astype(np.int32)
    with gzip.open(path, "rt", encoding="utf-8") as text:
        data = np.loadtxt(text, delimiter=",")
    images = data[:, :-1].reshape(-1, 8, 8).astype(np.uint8)[..., None]
    return images, data[:, -1].astype(np.int32)


def load_digits(cfg: DataConfig) -> Dataset:
    """Loads scikit-learn's bundled 8x8 digits, pixel values 0..16 scaled to [0, 1].

    Args:
        cfg: Dataset config; ``num_examples`` caps the training pool.

    Returns:
        The dataset: 10 classes, 360 test images, the remaining 1437 split into
        training and validation.
    """
    check_config(cfg)
    images, labels = _read_digits()
    return build_dataset(
        cfg,
        num_classes=10,
        decoded_shape=images.shape[1:],
        splits=_carve_splits(cfg, ArraySource(images, labels), labels, cfg.num_examples),
        pixel_scale=1.0 / 16.0,
    )


class SyntheticSource:
    """Random uint8 images whose class shows as a fixed low-frequency template.

    Args:
        num_examples: Number of examples.
        shape: (H, W, C).
        num_classes: Number of classes.
        seed: Seed of the labels, templates and per-image noise.
    """

    def __init__(self, num_examples: int, shape: tuple[int, int, int], num_classes: int, seed: int):
        self.shape = tuple(shape)
        self.seed = seed
        self.labels = np.random.default_rng([seed, 2]).integers(0, num_classes, num_examples)
        self.labels = self.labels.astype(np.int32)
        template_shape = (num_classes, _TEMPLATE_SIDE, _TEMPLATE_SIDE, self.shape[2])
        self._templates = np.random.default_rng([seed, 3]).integers(0, 128, template_shape)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Record:
        height, width, _ = self.shape
        label = self.labels[index]
        template = self._templates[label]
        template = np.repeat(template, -(-height // _TEMPLATE_SIDE), axis=0)[:height]
        template = np.repeat(template, -(-width // _TEMPLATE_SIDE), axis=1)[:, :width]
        noise = np.random.default_rng([self.seed, 4, index]).integers(0, 128, self.shape)
        return {"image": (template + noise).astype(np.uint8), "label": label}


def load_synthetic(cfg: DataConfig) -> Dataset:
    """Builds a synthetic dataset of ``cfg.synthetic_shape`` images.

    Args:
        cfg: Dataset config; ``num_examples`` is the total (0: 1280), of which 20% is
            the test split; ``synthetic_shape`` and ``synthetic_num_classes`` set the
            shapes.

    Returns:
        The dataset.
    """
    check_config(cfg)
    shape = tuple(int(s) for s in cfg.synthetic_shape)
    total = cfg.num_examples or SYNTHETIC_DEFAULT_EXAMPLES
    source = SyntheticSource(total, shape, cfg.synthetic_num_classes, cfg.split_seed)
    return build_dataset(
        cfg,
        num_classes=cfg.synthetic_num_classes,
        decoded_shape=shape,
        splits=_carve_splits(cfg, source, source.labels, cap=0),
        pixel_scale=1.0 / 255.0,
    )
