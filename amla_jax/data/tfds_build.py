"""Prepare cifar10, cifar100, mnist and fashion_mnist in tfds' ArrayRecord format, no TF.

tensorflow-datasets' own builders for these sets need TensorFlow only to read the
published files (``tf.io.gfile``) and to PNG-encode images (``tf.image.encode_png``);
its writer, shuffler and metadata do not. So each builder here subclasses tfds' own
(same name, version, features, label names, splits and example keys, hence the same
example order) and replaces those two steps: files are read by `amla_jax.data.published`
and images are PNG-encoded by PIL. The result is what ``tfds.data_source`` reads, as if
tfds had built it. tfds writes into an ``incomplete.*`` directory renamed at the end, so
a killed prepare leaves nothing that reads as prepared; a file lock lets concurrent runs
(trials, processes) wait for one prepare instead of racing.

Synopsis:
    counts = prepare_published("cifar10", "~/tensorflow_datasets")   # {"train": 50000, ...}
    is_prepared("cifar10", "~/tensorflow_datasets")                   # True
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import shutil
from collections.abc import Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.image_classification import cifar, mnist

from amla_jax.data import download, published
from amla_jax.data.base import DataError


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H, W, C] image (C = 1 written as grayscale)."""
    pixels = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="png")
    return buffer.getvalue()


class _FromFiles:
    """Builds from local files given at construction instead of tfds' download manager."""

    # tfds looks up checksums beside a builder's module (that lookup needs the
    # importlib_resources package); ours are checked by amla_jax.data.download.
    code_path = None

    def __init__(self, *, files: Mapping[str, str], **kwargs):
        self._files = dict(files)
        super().__init__(**kwargs)


class _CifarExamples(_FromFiles):
    """tfds' CIFAR examples (keys, ids, labels, label names) from the binary archive."""

    def _split_generators(self, dl_manager):
        del dl_manager
        layout = self._cifar_info
        archive = self._files[layout.url.rsplit("/", 1)[-1]]
        names = [layout.prefix + f for f in (*layout.train_files, *layout.test_files)]
        names += [layout.prefix + f for f in layout.label_files]
        members = published.read_tar_members(archive, names)
        for key, label_file in zip(layout.label_keys, layout.label_files, strict=True):
            label_names = published.parse_label_names(members[layout.prefix + label_file])
            self.info.features[key].names = label_names

        def split(files):
            parsed = [
                published.parse_cifar_records(members[layout.prefix + f], len(layout.label_keys), f)
                for f in files
            ]
            return np.concatenate([p[0] for p in parsed]), np.concatenate([p[1] for p in parsed])

        return {
            "train": self._generate_examples("train_", *split(layout.train_files)),
            "test": self._generate_examples("test_", *split(layout.test_files)),
        }

    def _generate_examples(self, split_prefix, labels, images):
        keys = self._cifar_info.label_keys
        for index, (row, image) in enumerate(zip(labels, images, strict=True)):
            record = {key: int(value) for key, value in zip(keys, row, strict=True)}
            record["id"] = f"{split_prefix}{index:05d}"
            record["image"] = encode_png(image)
            yield index, record


class _IdxExamples(_FromFiles):
    """tfds' (Fashion-)MNIST examples from the four gzipped IDX files."""

    FILES = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }

    def _split_generators(self, dl_manager):
        del dl_manager
        splits = {}
        for split, (image_file, label_file) in self.FILES.items():
            images = published.read_idx(self._files[image_file])
            labels = published.read_idx(self._files[label_file])
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DataError(
                    f"{image_file} {images.shape} and {label_file} {labels.shape} do not "
                    "hold one label per image: delete them and rerun"
                )
            splits[split] = self._generate_examples(images, labels)
        return splits

    def _generate_examples(self, images, labels):
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield index, {"image": encode_png(image), "label": int(label)}


class Cifar10(_CifarExamples, cifar.Cifar10, skip_registration=True):
    name = "cifar10"


class Cifar100(_CifarExamples, cifar.Cifar100, skip_registration=True):
    name = "cifar100"


class Mnist(_IdxExamples, mnist.MNIST, skip_registration=True):
    name = "mnist"


class FashionMnist(_IdxExamples, mnist.FashionMNIST, skip_registration=True):
    name = "fashion_mnist"


BUILDERS = {"cifar10": Cifar10, "cifar100": Cifar100, "mnist": Mnist, "fashion_mnist": FashionMnist}


def is_prepared(name: str, data_dir: str) -> bool:
    """Whether tfds dataset ``name`` is prepared (its ``dataset_info.json`` written)."""
    return tfds.builder(name, data_dir=data_dir).is_prepared()


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (other processes wait); freed even if killed."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_incomplete(data_dir: str, name: str) -> None:
    """Deletes what a killed prepare left (tfds' ``incomplete.*`` dirs; hold the lock)."""
    root = os.path.join(data_dir, name)
    if os.path.isdir(root):
        for entry in os.listdir(root):
            if entry.startswith("incomplete."):
                shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


def prepare_published(name: str, data_dir: str, manual_dir: str | None = None) -> dict:
    """Obtains the published files of ``name`` and prepares it, unless already prepared.

    Args:
        name: A key of `BUILDERS`.
        data_dir: The tfds data dir (already resolved).
        manual_dir: Where files placed by hand are (None: ``<data_dir>/downloads/manual``).

    Returns:
        Number of examples per split, e.g. ``{"train": 50000, "test": 10000}``.

    Raises:
        DataError: The files cannot be obtained or read (the message says what to do).
    """
    downloads = os.path.join(data_dir, "downloads")
    manual_dir = os.path.expanduser(manual_dir or os.path.join(downloads, "manual"))
    with _locked(os.path.join(data_dir, f".{name}.prepare.lock")):
        if not is_prepared(name, data_dir):
            _remove_incomplete(data_dir, name)
            download.remove_partial_downloads(downloads)
            files = download.obtain(name, downloads, manual_dir)
            builder = BUILDERS[name](files=files, data_dir=data_dir)
            builder.download_and_prepare(file_format="array_record")
    info = tfds.builder(name, data_dir=data_dir).info
    return {split: info.splits[split].num_examples for split in ("train", "test")}
