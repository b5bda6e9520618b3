"""Datasets as seeded streams of fixed-shape numpy batches.

``digits`` (scikit-learn, bundled) and ``synthetic`` work offline; ``cifar10``,
``cifar100``, ``mnist``, ``fashion_mnist`` and ``imagenet2012`` are read from prepared
tensorflow-datasets through ``tfds.data_source`` and grain, without TensorFlow; all but
ImageNet are downloaded and prepared on first use, also without TensorFlow
(`amla_jax.data.tfds_build`).

Synopsis:
    from amla_jax.data import DataConfig, load_dataset

    ds = load_dataset(DataConfig(name="digits"))
    ds.info.num_classes, ds.info.image_shape      # 10, (8, 8, 1)
    train = ds.train_batches(seed=0, batch_size=64)
    batch = next(train)    # {"image": f32 [64,8,8,1], "label": i32 [64], "mask": f32 [64]}
    for batch in ds.eval_batches("test", batch_size=128):
        ...                # fixed order; pad rows of the last batch have mask 0
"""

from amla_jax.data.augment import Preprocessor
from amla_jax.data.base import DataConfig, DataError, DatasetInfo

_READERS = ("Batch", "Dataset")
_REGISTRY = ("DATASETS", "Loader", "get_dataset_loader", "load_dataset")


def __getattr__(name: str):
    # The readers import grain, and with it JAX: they load on first use, so that the
    # config schema (`amla add`, `amla_jax.compose`) needs only `DataConfig`.
    if name in _READERS:
        from amla_jax.data import dataset  # noqa: PLC0415

        return getattr(dataset, name)
    if name in _REGISTRY:
        from amla_jax.data import registry  # noqa: PLC0415

        return getattr(registry, name)
    raise AttributeError(f"module 'amla_jax.data' has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "Batch",
    "DataConfig",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "Loader",
    "Preprocessor",
    "get_dataset_loader",
    "load_dataset",
]
