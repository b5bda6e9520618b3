"""tensorflow-datasets image classification sets, read without TensorFlow.

Examples are read by random access from prepared ArrayRecord files through
``tfds.data_source`` (images decoded by PIL), so training needs no TensorFlow. The
first use of cifar10, cifar100, mnist or fashion_mnist in a data dir downloads the
published files and prepares them, also without TensorFlow (`amla_jax.data.tfds_build`);
later uses read the prepared files. ImageNet must be downloaded by hand and prepared
with TensorFlow, see `amla_jax.data.prepare`. The validation split is a fixed random
subset of the training split chosen by ``split_seed``.

ImageNet images vary in size: each is resized so its shorter side is ``image_size``
(default 256) and its centre square is kept; training then random-crops (and flips)
``crop_size`` (default 224), evaluation centre-crops it.

Synopsis:
    ds = load_tfds(TFDS_DATASETS["cifar10"], DataConfig(name="cifar10", data_dir="~/tfds"))
    # first time: downloads cifar-10-binary.tar.gz (a progress bar), prepares, then loads
    # offline -> DataError: cannot download https://...: ... place cifar-10-binary.tar.gz in ...
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from amla_jax.data.base import (
    DataConfig,
    DataError,
    carve_validation,
    check_config,
    permuted_order,
)
from amla_jax.data.dataset import Dataset, Record, RecordSource, Split, build_dataset

IMAGENET_CROP_SIZE = 224
IMAGENET_RESIZE_RATIO = 0.875  # crop / shorter side: the usual 224 / 256
_MNIST_FILES = (
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"
)


@dataclass(frozen=True)
class TfdsSpec:
    """How one of our dataset names maps onto a tensorflow-datasets builder.

    Attributes:
        tfds_name: The builder name.
        num_classes: Number of label classes.
        image_shape: (H, W, C) of every image, or None when sizes vary (ImageNet).
        test_split: The tfds split used as our test split.
        manual_files: The files that prepare the dataset offline from ``manual_dir``.
        manual_only: The files cannot be downloaded automatically (and preparing
            needs TensorFlow); the others are obtained and prepared on first use.
    """

    tfds_name: str
    num_classes: int
    image_shape: tuple[int, int, int] | None
    test_split: str
    manual_files: str
    manual_only: bool = False


TFDS_DATASETS: dict[str, TfdsSpec] = {
    "cifar10": TfdsSpec("cifar10", 10, (32, 32, 3), "test", "cifar-10-binary.tar.gz"),
    "cifar100": TfdsSpec("cifar100", 100, (32, 32, 3), "test", "cifar-100-binary.tar.gz"),
    "mnist": TfdsSpec("mnist", 10, (28, 28, 1), "test", _MNIST_FILES),
    "fashion_mnist": TfdsSpec("fashion_mnist", 10, (28, 28, 1), "test", _MNIST_FILES),
    "imagenet2012": TfdsSpec(
        "imagenet2012",
        1000,
        None,
        "validation",
        "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar",
        manual_only=True,
    ),
}


def resolve_data_dir(data_dir: str | None) -> str:
    """Returns ``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
    chosen = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    return os.path.expanduser(chosen)


def prepare_hint(name: str, data_dir: str) -> str:
    """One line telling the user how to prepare dataset ``name`` in ``data_dir``."""
    spec = TFDS_DATASETS[name]
    manual_dir = os.path.join(data_dir, "downloads", "manual")
    command = f"`python -m amla_jax.data.prepare {name} --data_dir {data_dir}`"
    if spec.manual_only:
        return (
            f"manual download required: put {spec.manual_files} in {manual_dir}/, then run "
            f"`pip install -e .[prepare]` and {command}"
        )
    return f"run {command} (offline: put {spec.manual_files} in {manual_dir}/)"


def open_source(name: str, split: str, data_dir: str, prepare: bool = True) -> RecordSource:
    """Opens one split of a tfds dataset for random access, preparing it if it can.

    Args:
        name: A key of `TFDS_DATASETS`.
        split: The tfds split name.
        data_dir: The tfds data dir.
        prepare: Obtain and prepare the dataset when it is not prepared (every dataset
            but ImageNet; see `amla_jax.data.tfds_build`).

    Returns:
        The ``tfds.data_source`` of that split.

    Raises:
        DataError: The dataset is not prepared and cannot be (no network: the message
            names the URL and where to place the file), or not in the ArrayRecord format.
    """
    import tensorflow_datasets as tfds

    tfds_name = TFDS_DATASETS[name].tfds_name
    try:
        return tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=False)
    except Exception as error:
        if not tfds.builder(tfds_name, data_dir=data_dir).is_prepared():
            if prepare and not TFDS_DATASETS[name].manual_only:
                from amla_jax.data.tfds_build import prepare_published  # noqa: PLC0415

                prepare_published(tfds_name, data_dir)
                return open_source(name, split, data_dir, prepare=False)
            message = f"dataset {name!r} is not prepared in {data_dir}: "
            raise DataError(message + prepare_hint(name, data_dir)) from error
        if isinstance(error, NotImplementedError):
            raise DataError(
                f"dataset {name!r} in {data_dir} is not in the ArrayRecord format that "
                f"random access needs: prepare it into another data_dir with "
                f"`python -m amla_jax.data.prepare {name} --data_dir <new dir>`"
            ) from error
        raise


def resize_center_square(record: Record, size: int) -> Record:
    """Resizes the shorter side of ``record["image"]`` to ``size``; keeps the centre square.

    Args:
        record: A tfds record with a uint8 [H, W, C] image of any size.
        size: Output side.

    Returns:
        ``{"image": uint8 [size, size, C], "label": label}``.
    """
    pixels = np.asarray(record["image"])
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    width, height = image.size
    scale = size / min(width, height)
    new_width = max(size, round(width * scale))
    new_height = max(size, round(height * scale))
    image = image.resize((new_width, new_height), Image.BILINEAR)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image)
    return {"image": pixels[..., None] if pixels.ndim == 2 else pixels, "label": record["label"]}


def load_tfds(spec: TfdsSpec, cfg: DataConfig) -> Dataset:
    """Loads a prepared tfds dataset as a `Dataset`.

    Args:
        spec: Which tfds builder, see `TFDS_DATASETS`.
        cfg: Dataset config; ``num_examples`` caps the training pool.

    Returns:
        The dataset.

    Raises:
        DataError: The config is invalid, or the dataset is not prepared and cannot be
            prepared here (the message says how to).
    """
    check_config(cfg)
    data_dir = resolve_data_dir(cfg.data_dir)
    train_source = open_source(cfg.name, "train", data_dir)
    test_source = open_source(cfg.name, spec.test_split, data_dir)
    pool = permuted_order(len(train_source), cfg.split_seed)
    train, validation = carve_validation(pool, cfg.validation_size, cfg.num_examples)
    splits = {
        "train": Split(train_source, train),
        "validation": Split(train_source, validation),
        "test": Split(test_source, np.arange(len(test_source))),
    }
    if spec.image_shape is not None:
        return build_dataset(
            cfg,
            num_classes=spec.num_classes,
            decoded_shape=spec.image_shape,
            splits=splits,
            pixel_scale=1.0 / 255.0,
        )
    crop = cfg.crop_size or IMAGENET_CROP_SIZE
    canvas = cfg.image_size or round(crop / IMAGENET_RESIZE_RATIO)
    return build_dataset(
        cfg,
        num_classes=spec.num_classes,
        decoded_shape=(canvas, canvas, 3),
        splits=splits,
        pixel_scale=1.0 / 255.0,
        decode=functools.partial(resize_center_square, size=canvas),
        default_image_size=canvas,
        default_crop_size=crop,
    )
