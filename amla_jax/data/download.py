"""Obtain a dataset's published files once: a manual copy, or a checked, atomic download.

The URLs, sizes and SHA-256 digests are the ones tensorflow-datasets records for its
own builders (``tensorflow_datasets/url_checksums/<name>.txt``; tests/test_prepare.py
checks they still agree). A file is looked for in ``<manual_dir>`` first, then in
``<data_dir>/downloads``; otherwise it is downloaded there with a progress bar into a
``*.part`` file that is renamed only once its size and digest match, so a killed or
failed download never leaves a file a later run would take as complete.

Synopsis:
    paths = obtain("cifar10", "~/tensorflow_datasets/downloads", "~/tensorflow_datasets/downloads/manual")
    paths["cifar-10-binary.tar.gz"]     # a verified local file
    # offline -> DataError: cannot download https://...: place cifar-10-binary.tar.gz in ...
"""

from __future__ import annotations

import glob
import hashlib
import http.client
import os
import tempfile
import urllib.request
from dataclasses import dataclass

from amla_jax.data.base import DataError
from amla_jax.progress import progress_bar

MIB = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class SourceFile:
    """One published file: where it is, how large, and its SHA-256 hex digest."""

    url: str
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


_MNIST = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# As recorded by tensorflow-datasets 4.9 (url_checksums/<name>.txt).
SOURCES: dict[str, tuple[SourceFile, ...]] = {
    "cifar10": (
        SourceFile(
            "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            170052171,
            "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
        ),
    ),
    "cifar100": (
        SourceFile(
            "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
            168513733,
            "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
        ),
    ),
    "mnist": (
        SourceFile(
            _MNIST + "train-images-idx3-ubyte.gz",
            9912422,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        SourceFile(
            _MNIST + "train-labels-idx1-ubyte.gz",
            28881,
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        SourceFile(
            _MNIST + "t10k-images-idx3-ubyte.gz",
            1648877,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        SourceFile(
            _MNIST + "t10k-labels-idx1-ubyte.gz",
            4542,
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    ),
    "fashion_mnist": (
        SourceFile(
            _FASHION + "train-images-idx3-ubyte.gz",
            26421880,
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        ),
        SourceFile(
            _FASHION + "train-labels-idx1-ubyte.gz",
            29515,
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        ),
        SourceFile(
            _FASHION + "t10k-images-idx3-ubyte.gz",
            4422102,
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        ),
        SourceFile(
            _FASHION + "t10k-labels-idx1-ubyte.gz",
            5148,
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
    ),
}


def sha256_of(path: str) -> str:
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def open_url(url: str):
    """Opens ``url`` for reading (the one network call; tests replace it)."""
    return urllib.request.urlopen(url, timeout=TIMEOUT_S)


def _check(path: str, source: SourceFile, what: str) -> None:
    """Raises `DataError` (saying ``what`` was checked) unless ``path`` matches ``source``."""
    size = os.path.getsize(path)
    if size != source.size or sha256_of(path) != source.sha256:
        raise DataError(
            f"{what} is not the published {source.filename} (size {size}, expected "
            f"{source.size}, or its SHA-256 differs from tensorflow-datasets' record): "
            f"delete it and rerun, or place the file from {source.url} in its place"
        )


def download(source: SourceFile, downloads: str, manual_dir: str) -> str:
    """Downloads ``source`` into ``downloads``, atomically; returns the file's path.

    Raises:
        DataError: The download fails (the message names the URL and where to place the
            file by hand), or its size or digest do not match.
    """
    os.makedirs(downloads, exist_ok=True)
    final = os.path.join(downloads, source.filename)
    handle, part = tempfile.mkstemp(dir=downloads, prefix=source.filename + ".", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            _stream(source, out)
        _check(part, source, f"the file downloaded from {source.url}")
        os.replace(part, final)
    except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(
            f"cannot download {source.url} ({reason}): download it elsewhere and place "
            f"{source.filename} in {manual_dir}/, then rerun"
        ) from None
    finally:
        if os.path.exists(part):
            os.remove(part)
    return final


def _stream(source: SourceFile, out) -> None:
    """Copies ``source.url`` into the open file ``out``, drawing a progress bar."""
    total_mib = -(-source.size // MIB)
    with (
        open_url(source.url) as response,
        progress_bar(f"downloading {source.filename} (MiB)", total=total_mib) as advance,
    ):
        done = 0
        while chunk := response.read(MIB):
            out.write(chunk)
            done += len(chunk)
            advance(done // MIB)


def remove_partial_downloads(downloads: str) -> None:
    """Deletes ``*.part`` files left by killed downloads (call while holding the lock)."""
    for path in glob.glob(os.path.join(downloads, "*.part")):
        os.remove(path)


def obtain(name: str, downloads: str, manual_dir: str) -> dict[str, str]:
    """Returns ``{filename: verified local path}`` for every published file of ``name``.

    Args:
        name: A key of `SOURCES`.
        downloads: Where downloads go (and earlier ones are reused).
        manual_dir: Where a user may have placed the files by hand; looked at first.

    Raises:
        DataError: A file cannot be downloaded or does not match its recorded digest.
    """
    paths = {}
    for source in SOURCES[name]:
        manual = os.path.join(manual_dir, source.filename)
        done = os.path.join(downloads, source.filename)
        if os.path.exists(manual):
            _check(manual, source, manual)
            paths[source.filename] = manual
        elif os.path.exists(done):
            _check(done, source, done)
            paths[source.filename] = done
        else:
            print(f"downloading {source.url} ({source.size / MIB:.1f} MiB)", flush=True)
            paths[source.filename] = download(source, downloads, manual_dir)
    return paths
