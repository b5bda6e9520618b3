"""Prepare a tensorflow-datasets dataset once, in the ArrayRecord format training reads.

cifar10, cifar100, mnist and fashion_mnist need no TensorFlow (`amla_jax.data.tfds_build`;
training also prepares them on first use, so this command is only needed to prepare
ahead, e.g. on a login node with network). ImageNet needs TensorFlow
(``pip install -e .[prepare]``) and its archives downloaded by hand. Offline, put the
published files in ``<data_dir>/downloads/manual/`` (or pass ``--manual_dir``).

Synopsis:
    python -m amla_jax.data.prepare cifar10 --data_dir ~/tensorflow_datasets
    python -m amla_jax.data.prepare imagenet2012 --data_dir /data/tfds --manual_dir /data/ilsvrc
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from amla_jax.data.base import DataError
from amla_jax.data.tfds_build import prepare_published
from amla_jax.data.tfds_source import TFDS_DATASETS, open_source, resolve_data_dir

_PREPARE_MODULES = ("tensorflow", "importlib_resources")


def missing_prepare_modules() -> list[str]:
    """Returns the modules that preparing ImageNet needs but that are not installed."""
    return [name for name in _PREPARE_MODULES if importlib.util.find_spec(name) is None]


def prepare(name: str, data_dir: str | None = None, manual_dir: str | None = None) -> dict:
    """Downloads (or reads from ``manual_dir``) and prepares dataset ``name`` (once).

    Args:
        name: A tfds-backed dataset name, e.g. "cifar10".
        data_dir: tfds data dir (None: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
        manual_dir: Where manually downloaded archives are (None:
            ``<data_dir>/downloads/manual``).

    Returns:
        Number of examples per prepared split, e.g. ``{"train": 50000, "test": 10000}``.

    Raises:
        DataError: Unknown name, files that cannot be obtained, or (ImageNet)
            TensorFlow is not installed.
    """
    if name not in TFDS_DATASETS:
        valid = ", ".join(sorted(TFDS_DATASETS))
        raise DataError(f"unknown tfds dataset {name!r}; valid names: {valid}")
    spec = TFDS_DATASETS[name]
    data_dir = resolve_data_dir(data_dir)
    if not spec.manual_only:
        return prepare_published(spec.tfds_name, data_dir, manual_dir)
    missing = missing_prepare_modules()
    if missing:
        raise DataError(
            f"preparing needs {', '.join(missing)} (not installed): run "
            "`pip install -e .[prepare]` (training afterwards needs no TensorFlow)"
        )
    import tensorflow_datasets as tfds

    manual_dir = os.path.expanduser(manual_dir or os.path.join(data_dir, "downloads", "manual"))
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir),
    )
    splits = ("train", spec.test_split)
    return {split: len(open_source(name, split, data_dir)) for split in splits}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m amla_jax.data.prepare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("name", choices=sorted(TFDS_DATASETS), help="dataset to prepare")
    parser.add_argument("--data_dir", default=None, help="tfds data dir")
    parser.add_argument(
        "--manual_dir", default=None, help="manual downloads (default <data_dir>/downloads/manual)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI; returns the process exit status."""
    args = parse_args(argv)
    try:
        counts = prepare(args.name, args.data_dir, args.manual_dir)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sizes = ", ".join(f"{split}: {count}" for split, count in counts.items())
    print(f"prepared {args.name} in {resolve_data_dir(args.data_dir)} ({sizes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
