"""Tests of amla_jax.data: splits, seeded streams, eval padding, augmentation, tfds path."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from amla_jax.data import (
    DATASETS,
    DataConfig,
    DataError,
    Dataset,
    augment,
    get_dataset_loader,
    load_dataset,
    prepare,
)
from amla_jax.data.base import check_config, stratified_order
from amla_jax.data.dataset import ArraySource, Split, build_dataset

AUGMENTED = dict(random_crop=True, crop_padding=2, flip=True, cutout=3)


def take(stream, count):
    return list(itertools.islice(stream, count))


def indexed_dataset(num_threads: int = 0, **overrides) -> Dataset:
    """A dataset whose image i is filled with the value i, to trace examples."""
    values = np.arange(50, dtype=np.float32)
    images = np.broadcast_to(values[:, None, None, None], (50, 4, 4, 1)).copy()
    source = ArraySource(images, np.arange(50, dtype=np.int32) % 5)
    splits = {
        "train": Split(source, np.arange(0, 30)),
        "validation": Split(source, np.arange(30, 40)),
        "test": Split(source, np.arange(40, 50)),
    }
    cfg = DataConfig(name="indexed", standardize=False, num_threads=num_threads, **overrides)
    return build_dataset(
        cfg, num_classes=5, decoded_shape=(4, 4, 1), splits=splits, pixel_scale=1.0
    )


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits", num_threads=0, **AUGMENTED))


def test_digits_info_and_split_sizes(digits):
    info = digits.info
    assert (info.name, info.num_classes, info.image_shape) == ("digits", 10, (8, 8, 1))
    assert (info.num_train, info.num_validation, info.num_test) == (1293, 144, 360)


def test_digits_splits_are_disjoint_stratified_and_fixed(digits):
    parts = [set(digits.indices(s).tolist()) for s in ("train", "validation", "test")]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 1797
    test_labels = load_digits().target[digits.indices("test")]
    counts = np.bincount(test_labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # ~20% of ~180 per class
    again = load_dataset(DataConfig(name="digits", num_threads=0))
    other = load_dataset(DataConfig(name="digits", num_threads=0, split_seed=1))
    np.testing.assert_array_equal(again.indices("test"), digits.indices("test"))
    assert not np.array_equal(other.indices("test"), digits.indices("test"))


def test_digits_read_without_scikit_learn_equal_its_loader(monkeypatch):
    # digits is read from scikit-learn's bundled CSV without importing scikit-learn (a
    # slow import at every run's start); where the CSV is not found, its loader is used.
    # Both must give the same dataset, batch for batch.
    import importlib.util  # noqa: PLC0415

    direct = load_dataset(DataConfig(name="digits", num_threads=0, **AUGMENTED))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    fallback = load_dataset(DataConfig(name="digits", num_threads=0, **AUGMENTED))
    for split in ("validation", "test"):
        pairs = zip(direct.eval_batches(split, 100), fallback.eval_batches(split, 100), strict=True)
        for ours, theirs in pairs:
            np.testing.assert_array_equal(ours["image"], theirs["image"])
            np.testing.assert_array_equal(ours["label"], theirs["label"])
    ours, theirs = (take(d.train_batches(seed=5, batch_size=64), 2) for d in (direct, fallback))
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
    check = (
        "import sys; from amla_jax.data import DataConfig, load_dataset;"
        "load_dataset(DataConfig(name='digits')); assert 'sklearn' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", check], timeout=300).returncode == 0


def test_validation_size_count_fraction_and_zero():
    count = load_dataset(DataConfig(validation_size=100, num_threads=0))
    assert count.info.num_validation == 100 and count.info.num_train == 1337
    none = load_dataset(DataConfig(validation_size=0, num_threads=0))
    assert none.info.num_validation == 0
    with pytest.raises(DataError, match="validation"):
        next(none.eval_batches("validation", 32))
    capped = load_dataset(DataConfig(num_examples=200, num_threads=0))
    assert (capped.info.num_train, capped.info.num_validation) == (180, 20)


def test_train_batches_shapes_and_normalisation(digits):
    batch = next(digits.train_batches(seed=0, batch_size=32))
    assert batch["image"].shape == (32, 8, 8, 1) and batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32 and batch["label"].shape == (32,)
    np.testing.assert_array_equal(batch["mask"], np.ones(32, np.float32))


def test_train_stream_is_deterministic_in_the_seed(digits):
    first = take(digits.train_batches(seed=3, batch_size=64), 3)
    second = take(digits.train_batches(seed=3, batch_size=64), 3)
    other = take(digits.train_batches(seed=4, batch_size=64), 3)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    assert not np.array_equal(first[0]["image"], other[0]["image"])


def test_threads_give_the_same_stream():
    serial = take(indexed_dataset(0, **AUGMENTED).train_batches(7, 8), 8)
    threaded = take(indexed_dataset(2, **AUGMENTED).train_batches(7, 8), 8)
    for a, b in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_epochs_are_reshuffled_and_drop_the_remainder():
    ds = indexed_dataset()
    batches = take(ds.train_batches(seed=0, batch_size=8), 6)  # 30 // 8 = 3 per epoch
    epochs = [np.concatenate([b["image"][:, 0, 0, 0] for b in batches[i : i + 3]]) for i in (0, 3)]
    for seen in epochs:
        assert len(seen) == 24 and len(set(seen.tolist())) == 24
        assert set(seen.tolist()) <= set(range(30))
    assert not np.array_equal(epochs[0], epochs[1])


@pytest.mark.parametrize(
    "split, expected", [("validation", range(30, 40)), ("test", range(40, 50))]
)
def test_eval_batches_cover_each_example_once_with_padding(split, expected):
    batches = list(indexed_dataset().eval_batches(split, batch_size=4))
    assert [b["image"].shape for b in batches] == [(4, 4, 4, 1)] * 3
    masks = np.concatenate([b["mask"] for b in batches])
    np.testing.assert_array_equal(masks, [1] * 10 + [0] * 2)
    values = np.concatenate([b["image"][:, 0, 0, 0] for b in batches])
    np.testing.assert_array_equal(values[:10], list(expected))
    np.testing.assert_array_equal(values[10:], 0)


def test_bad_arguments_raise_data_error(digits):
    with pytest.raises(DataError, match="split"):
        digits.eval_batches("dev", 8)
    with pytest.raises(DataError, match="batch_size"):
        digits.train_batches(0, 10_000)
    with pytest.raises(DataError, match="DataConfig.cutout"):
        check_config(DataConfig(cutout=-1))
    with pytest.raises(DataError, match="DataConfig.contrast"):
        check_config(DataConfig(contrast=2.0))


def test_stratified_order_prefixes_are_balanced():
    labels = np.repeat(np.arange(4), [100, 100, 100, 100])
    order = stratified_order(labels, split_seed=0)
    np.testing.assert_array_equal(np.sort(order), np.arange(400))
    assert np.bincount(labels[order[:40]], minlength=4).tolist() == [10, 10, 10, 10]


def test_random_crop_keeps_shape_and_takes_a_window():
    rng = np.random.default_rng(0)
    images = rng.random((16, 8, 8, 3), dtype=np.float32)
    padded = augment.pad_images(images, 2)
    crops = augment.random_crop(padded, (8, 8), rng)
    assert crops.shape == images.shape
    for padded_image, crop in zip(padded, crops, strict=True):
        windows = np.lib.stride_tricks.sliding_window_view(padded_image, (8, 8), axis=(0, 1))
        assert (windows.transpose(0, 1, 3, 4, 2) == crop).all(axis=(2, 3, 4)).any()


def test_center_pad_or_crop_matches_tf_offsets():
    images = np.arange(5 * 5, dtype=np.float32).reshape(1, 5, 5, 1)
    np.testing.assert_array_equal(
        augment.center_pad_or_crop(images, 3)[0, :, :, 0], images[0, 1:4, 1:4, 0]
    )
    padded = augment.center_pad_or_crop(images, 8)
    assert padded.shape == (1, 8, 8, 1)
    np.testing.assert_array_equal(padded[0, 1:6, 1:6], images[0])


def test_random_flip_flips_some_images_left_right():
    images = np.random.default_rng(1).random((64, 4, 4, 2), dtype=np.float32)
    flipped = augment.random_flip(images, np.random.default_rng(0))
    same = (flipped == images).all(axis=(1, 2, 3))
    mirrored = (flipped == images[:, :, ::-1]).all(axis=(1, 2, 3))
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_cutout_zeroes_one_clipped_square():
    images = np.ones((200, 12, 12, 3), np.float32)
    out = augment.cutout(images, 4, np.random.default_rng(0))
    zeros = (out == 0).all(axis=3)
    assert ((out == 0) == zeros[..., None]).all()  # all channels together
    for zeroed in zeros:
        rows, cols = np.nonzero(zeroed.any(axis=1))[0], np.nonzero(zeroed.any(axis=0))[0]
        assert zeroed.sum() == len(rows) * len(cols) and 1 <= len(rows) <= 4
        assert np.ptp(rows) == len(rows) - 1 and np.ptp(cols) == len(cols) - 1
    assert (zeros.sum(axis=(1, 2)) == 16).any() and (zeros.sum(axis=(1, 2)) < 16).any()


def test_per_image_standardization():
    images = np.random.default_rng(0).random((8, 6, 6, 3), dtype=np.float32) * 5 + 2
    out = augment.per_image_standardization(images)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-4)
    constant = augment.per_image_standardization(np.full((2, 4, 4, 1), 3.0, np.float32))
    np.testing.assert_array_equal(constant, 0)  # std floored at 1/sqrt(N), no NaN


def test_brightness_and_contrast_keep_shape_and_vary_per_image():
    images = np.random.default_rng(0).random((8, 4, 4, 3), dtype=np.float32)
    rng = np.random.default_rng(0)
    brighter = augment.random_brightness(images, 0.25, rng)
    shift = (brighter - images).mean(axis=(1, 2, 3))
    assert np.abs(shift).max() <= 0.25 and np.ptp(shift) > 0
    contrasted = augment.random_contrast(images, 0.2, 1.8, rng)
    np.testing.assert_allclose(contrasted.mean(axis=(1, 2)), images.mean(axis=(1, 2)), atol=1e-5)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DataError, match="valid names: .*cifar10.*digits") as caught:
        get_dataset_loader("cifar11")
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


def test_missing_imagenet_says_how_to_prepare(tmp_path):
    # The other tfds sets prepare themselves on first use (tests/test_prepare.py).
    with pytest.raises(DataError) as caught:
        load_dataset(DataConfig(name="imagenet2012", data_dir=str(tmp_path)))
    message = str(caught.value)
    assert "not prepared" in message and "\n" not in message
    assert f"python -m amla_jax.data.prepare imagenet2012 --data_dir {tmp_path}" in message
    assert "ILSVRC2012_img_train.tar" in message


def test_prepare_without_tensorflow_exits_with_hint(monkeypatch, capsys):
    monkeypatch.setattr(prepare, "missing_prepare_modules", lambda: ["tensorflow"])
    assert prepare.main(["imagenet2012", "--data_dir", "/nonexistent"]) == 2
    assert "pip install -e .[prepare]" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_registered_dataset_yields_batches_of_its_info_shape(name, tmp_path):
    cfg = DataConfig(name=name, data_dir=str(tmp_path), flip=True, random_crop=True)
    if name == "imagenet2012":
        cfg.image_size, cfg.crop_size = 40, 32  # the resize path, at a small size
    with tfds.testing.mock_data(num_examples=20):
        ds = load_dataset(cfg)
    shape = ds.info.image_shape
    assert ds.info.num_train > 0 and ds.info.num_validation > 0 and ds.info.num_test > 0
    assert next(ds.train_batches(0, 8))["image"].shape == (8, *shape)
    for split in ("validation", "test"):
        batches = list(ds.eval_batches(split, 8))
        assert all(b["image"].shape == (8, *shape) for b in batches)
        assert sum(b["mask"].sum() for b in batches) == len(ds.indices(split))


@pytest.mark.parametrize(
    "name, shape, num_classes",
    [("cifar10", (32, 32, 3), 10), ("mnist", (28, 28, 1), 10), ("cifar100", (32, 32, 3), 100)],
)
def test_tfds_path_under_mock(name, shape, num_classes, tmp_path):
    cfg = DataConfig(name=name, data_dir=str(tmp_path), num_threads=2, **AUGMENTED)
    with tfds.testing.mock_data(num_examples=30):
        ds = load_dataset(cfg)
    info = ds.info
    assert (info.image_shape, info.num_classes) == (shape, num_classes)
    assert (info.num_train, info.num_validation, info.num_test) == (27, 3, 30)
    batches = take(ds.train_batches(0, 8), 4)  # crosses an epoch boundary
    assert all(b["image"].shape == (8, *shape) for b in batches)
    assert all(b["label"].max() < num_classes for b in batches)
    test = list(ds.eval_batches("test", 16))
    np.testing.assert_array_equal(np.concatenate([b["mask"] for b in test]), [1] * 30 + [0] * 2)


def test_imagenet_defaults_resize_to_256_and_crop_224(tmp_path):
    with tfds.testing.mock_data(num_examples=4):
        ds = load_dataset(DataConfig(name="imagenet2012", data_dir=str(tmp_path), num_threads=0))
    assert ds.info.image_shape == (224, 224, 3) and ds.preprocessor.image_size == 256
    assert next(ds.eval_batches("test", 4))["image"].shape == (4, 224, 224, 3)


def test_synthetic_shape_and_classes():
    cfg = DataConfig(name="synthetic", synthetic_shape=[9, 7, 2], synthetic_num_classes=3)
    cfg.num_examples = 100
    ds = load_dataset(cfg)
    assert ds.info.image_shape == (9, 7, 2) and ds.info.num_classes == 3
    assert ds.info.num_train + ds.info.num_validation + ds.info.num_test == 100
    batch = next(ds.train_batches(0, 16))
    assert batch["image"].shape == (16, 9, 7, 2) and batch["label"].max() < 3


def test_data_config_is_a_structured_config_schema():
    omegaconf = pytest.importorskip("omegaconf")
    schema = omegaconf.OmegaConf.structured(DataConfig)
    merged = omegaconf.OmegaConf.merge(schema, {"name": "cifar10", "validation_size": 5000})
    cfg = omegaconf.OmegaConf.to_object(merged)
    assert isinstance(cfg, DataConfig) and cfg.validation_size == 5000
    check_config(cfg)
