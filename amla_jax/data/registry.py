"""The dataset registry: name -> loader, and `load_dataset`.

Synopsis:
    ds = load_dataset(DataConfig(name="digits"))
    loader = get_dataset_loader("cifar10")      # DataError listing valid names if unknown
    DATASETS["my_set"] = my_loader               # a loader is DataConfig -> Dataset
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from amla_jax.data.base import DataConfig, DataError
from amla_jax.data.dataset import Dataset
from amla_jax.data.offline import load_digits, load_synthetic
from amla_jax.data.tfds_source import TFDS_DATASETS, load_tfds

Loader = Callable[[DataConfig], Dataset]

DATASETS: dict[str, Loader] = {
    "digits": load_digits,
    "synthetic": load_synthetic,
    **{name: functools.partial(load_tfds, spec) for name, spec in TFDS_DATASETS.items()},
}


def get_dataset_loader(name: str) -> Loader:
    """Returns the loader registered as ``name``.

    Raises:
        DataError: ``name`` is not registered; the message lists the valid names.
    """
    try:
        return DATASETS[name]
    except KeyError:
        valid = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown dataset {name!r}; valid names: {valid}") from None


def load_dataset(cfg: DataConfig) -> Dataset:
    """Loads the dataset named ``cfg.name``.

    Args:
        cfg: The dataset config.

    Returns:
        The loaded `Dataset`.

    Raises:
        DataError: Unknown name, invalid config, or a tfds dataset that is not prepared.
    """
    return get_dataset_loader(cfg.name)(cfg)
