"""Readers of the files CIFAR and (Fashion-)MNIST are published as (numpy only, no TF).

CIFAR's "binary version" archives hold files of fixed-size records: ``num_labels``
label bytes, then a 32x32 image as 1024 red, 1024 green and 1024 blue bytes, rows
top to bottom. MNIST and Fashion-MNIST are gzipped IDX files: a big-endian header
(two zero bytes, a type byte, the number of dimensions, then each dimension as a
uint32) followed by the values. Every reader checks the layout and raises `DataError`
naming the file when it does not match, so a truncated or wrong file never becomes
a silently wrong dataset.

Synopsis:
    members = read_tar_members("cifar-10-binary.tar.gz", ["cifar-10-batches-bin/test_batch.bin"])
    labels, images = parse_cifar_records(members["cifar-10-batches-bin/test_batch.bin"], 1)
    images = read_idx("t10k-images-idx3-ubyte.gz")      # uint8 [10000, 28, 28]
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from collections.abc import Iterable

import numpy as np

from amla_jax.data.base import DataError

CIFAR_SIDE = 32
CIFAR_IMAGE_BYTES = 3 * CIFAR_SIDE * CIFAR_SIDE
IDX_UBYTE = 0x08  # the only value type MNIST's files use


def read_tar_members(path: str | os.PathLike, names: Iterable[str]) -> dict[str, bytes]:
    """Reads the named regular files of a (gzipped) tar archive, in one pass.

    Args:
        path: The archive.
        names: Member paths inside it.

    Returns:
        ``{name: contents}`` for every name.

    Raises:
        DataError: The archive cannot be read or lacks one of the names.
    """
    wanted = set(names)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.name in wanted and member.isfile():
                    found[member.name] = archive.extractfile(member).read()
    except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
        raise DataError(f"cannot read the archive {path}: {error}") from None
    missing = sorted(wanted - set(found))
    if missing:
        raise DataError(f"the archive {path} lacks {', '.join(missing)}: is it the right file?")
    return found


def parse_cifar_records(data: bytes, num_labels: int, source: str = "<bytes>"):
    """Parses CIFAR binary records.

    Args:
        data: The contents of one batch file (``data_batch_1.bin``, ``train.bin``, ...).
        num_labels: Label bytes per record: 1 (CIFAR-10), 2 (CIFAR-100: coarse, fine).
        source: The file's name, for error messages.

    Returns:
        ``(labels, images)``: uint8 ``[N, num_labels]`` and uint8 ``[N, 32, 32, 3]``.

    Raises:
        DataError: The length is not a whole number of records.
    """
    record = num_labels + CIFAR_IMAGE_BYTES
    if not data or len(data) % record:
        raise DataError(
            f"{source} has {len(data)} bytes, not a whole number of {record}-byte CIFAR "
            "records: the download is damaged, delete it and rerun"
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    planes = rows[:, num_labels:].reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)
    return rows[:, :num_labels].copy(), np.ascontiguousarray(planes.transpose(0, 2, 3, 1))


def parse_label_names(data: bytes) -> list[str]:
    """The class names of a CIFAR ``*.txt`` label file, one a line, blank lines dropped."""
    return [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parses an (uncompressed) IDX file of unsigned bytes.

    Args:
        data: The file's contents.
        source: The file's name, for error messages.

    Returns:
        A uint8 array of the shape the header declares.

    Raises:
        DataError: Bad magic number, value type, or length.
    """
    damaged = f"{source} is not an IDX file of bytes"
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != IDX_UBYTE:
        raise DataError(f"{damaged} (bad header): the download is damaged, delete it and rerun")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{damaged} (bad header): the download is damaged, delete it and rerun")
    shape = tuple(int(n) for n in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(
            f"{source} has {len(data)} bytes, its header declares {expected}: "
            "the download is damaged, delete it and rerun"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads a gzipped (``.gz``) or plain IDX file of bytes, see `parse_idx`."""
    try:
        opener = gzip.open if os.fspath(path).endswith(".gz") else open
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    return parse_idx(data, os.path.basename(path))
