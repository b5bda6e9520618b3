"""Tiny synthetic files in CIFAR's and MNIST's published formats, and a fake download.

Synopsis (in a test)::

    fetched = serve(monkeypatch, "cifar10", tmp_path / "server", num_train=20, num_test=8)
    ...                      # amla_jax downloads from tmp_path / "server" instead of the web
    assert fetched == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]

``serve`` writes the files, points `amla_jax.data.download.SOURCES` at their sizes and
digests, and replaces the one network call (`download.open_url`) by a read of that dir,
recording each URL asked for. `install_in_subprocess` does the same inside a child
``python -c`` (the CLI tests).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile

import numpy as np

from amla_jax.data import download

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer"] + [
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def fake_images(seed: int, count: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def fake_labels(seed: int, count: int, num_classes: int) -> np.ndarray:
    return np.random.default_rng(seed + 1000).integers(0, num_classes, count, dtype=np.uint8)


def cifar_records(labels: np.ndarray, images: np.ndarray) -> bytes:
    """CIFAR binary records: label byte(s), then the R, G and B planes of each image."""
    labels = labels.reshape(len(images), -1)
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels, planes], axis=1).astype(np.uint8).tobytes()


def write_tar_gz(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: 0, 0, 0x08, ndim, big-endian dims, the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def split_data(name: str, split: str, count: int):
    """The (labels, images) a fake file of ``name``'s ``split`` holds; labels [N, k]."""
    seed = {"train": 0, "test": 1}[split]
    if name.startswith("cifar"):
        images = fake_images(seed, count, (32, 32, 3))
        fine = fake_labels(seed, count, 100 if name == "cifar100" else 10)
        if name == "cifar100":
            return np.stack([fine % 20, fine], axis=1), images
        return fine[:, None], images
    return fake_labels(seed, count, 10)[:, None], fake_images(seed, count, (28, 28))


def write_published(name: str, directory, num_train: int, num_test: int) -> None:
    """Writes ``name``'s published file(s), holding `split_data`, into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    train, test = split_data(name, "train", num_train), split_data(name, "test", num_test)
    if name == "cifar10":
        per_batch = np.array_split(np.arange(num_train), 5)
        members = {
            f"cifar-10-batches-bin/data_batch_{i + 1}.bin": cifar_records(
                train[0][rows], train[1][rows]
            )
            for i, rows in enumerate(per_batch)
        }
        members["cifar-10-batches-bin/test_batch.bin"] = cifar_records(*test)
        members["cifar-10-batches-bin/batches.meta.txt"] = (
            "\n".join(CIFAR10_NAMES) + "\n\n"
        ).encode()
        write_tar_gz(os.path.join(directory, "cifar-10-binary.tar.gz"), members)
    elif name == "cifar100":
        members = {
            "cifar-100-binary/train.bin": cifar_records(*train),
            "cifar-100-binary/test.bin": cifar_records(*test),
            "cifar-100-binary/coarse_label_names.txt": "\n".join(
                f"c{i}" for i in range(20)
            ).encode(),
            "cifar-100-binary/fine_label_names.txt": "\n".join(
                f"f{i}" for i in range(100)
            ).encode(),
        }
        write_tar_gz(os.path.join(directory, "cifar-100-binary.tar.gz"), members)
    else:
        for prefix, (labels, images) in (("train", train), ("t10k", test)):
            for kind, array in (("images-idx3", images), ("labels-idx1", labels[:, 0])):
                path = os.path.join(directory, f"{prefix}-{kind}-ubyte.gz")
                with gzip.open(path, "wb") as file:
                    file.write(idx_bytes(array))


def point_sources_at(name: str, directory) -> None:
    """Replaces ``download.SOURCES[name]`` by the sizes and digests of the fake files."""
    download.SOURCES[name] = tuple(
        download.SourceFile(
            source.url,
            os.path.getsize(os.path.join(directory, source.filename)),
            hashlib.sha256(open(os.path.join(directory, source.filename), "rb").read()).hexdigest(),
        )
        for source in download.SOURCES[name]
    )


def serve(monkeypatch, name: str, directory, num_train: int = 20, num_test: int = 8) -> list[str]:
    """Fakes the web for ``name`` from ``directory``; returns the list of URLs fetched."""
    write_published(name, directory, num_train, num_test)
    monkeypatch.setattr(download, "SOURCES", dict(download.SOURCES))
    point_sources_at(name, directory)
    fetched: list[str] = []

    def open_url(url):
        fetched.append(url)
        return open(os.path.join(directory, url.rsplit("/", 1)[-1]), "rb")

    monkeypatch.setattr(download, "open_url", open_url)
    return fetched


def install_in_subprocess(name: str, directory, log) -> str:
    """Python source that does what `serve` does (files already written) in a child
    process, appending each fetched URL to the file ``log``."""
    return (
        "import os\n"
        "from amla_jax.data import download\n"
        "from published_fakes import point_sources_at\n"
        f"point_sources_at({name!r}, {str(directory)!r})\n"
        "def open_url(url):\n"
        f"    with open({str(log)!r}, 'a') as log:\n"
        "        log.write(url + '\\n')\n"
        f"    return open(os.path.join({str(directory)!r}, url.rsplit('/', 1)[-1]), 'rb')\n"
        "download.open_url = open_url\n"
    )
