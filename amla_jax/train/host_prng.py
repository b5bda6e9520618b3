"""The initialisation's random numbers, drawn on the host by NumPy's Philox.

Flax draws each parameter from its own key: ``fold_in(params_key, hash(path))`` and then
the parameter's random bits. With JAX's default Threefry both are XLA programs, and a
network's initialisation compiles one of each per parameter: about 1,100 fusions and
4-7 s of XLA:CPU compile for a 200-parameter digits EnvelopeNet, once per candidate of a
search (experiments/bench/README.md, issue 14). `HOST_PHILOX` is a JAX PRNG
implementation (`jax.extend.random.define_prng_impl`) whose key derivation is NumPy's
``SeedSequence`` and whose bits are NumPy's ``Philox`` counter-based generator, called
from the program with `jax.pure_callback`: the same initialisation compiles in about
0.5 s and runs in about 0.2 s. Values are deterministic in the key (and the same on every
platform); they are not Threefry's values.

It is for programs that run once (`amla_jax.train.state`'s initialisation): every call
crosses to the host. Steps keep JAX's default implementation.

Synopsis::

    from amla_jax.train.host_prng import host_key
    variables = jax.jit(lambda k: model.init(host_key(k), x))(jax.random.key(0))
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import define_prng_impl

_WORD = np.uint32


def _entropy(key: np.ndarray, *more: int) -> list[int]:
    return [int(word) for word in np.asarray(key, _WORD).ravel()] + [int(m) for m in more]


def _seed_host(seed: np.ndarray) -> np.ndarray:
    return np.random.SeedSequence(int(seed) % 2**64).generate_state(2, _WORD)


def _fold_in_host(key: np.ndarray, data: np.ndarray) -> np.ndarray:
    return np.random.SeedSequence(_entropy(key, int(data))).generate_state(2, _WORD)


def _split_host(key: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    children = np.random.SeedSequence(_entropy(key)).spawn(math.prod(shape))
    keys = [child.generate_state(2, _WORD) for child in children]
    return np.asarray(keys, _WORD).reshape(*shape, 2)


def _bits_host(key: np.ndarray, bit_width: int, shape: tuple[int, ...]) -> np.ndarray:
    words = np.asarray(key, _WORD).astype(np.uint64)
    generator = np.random.Philox(key=int((words[0] << np.uint64(32)) | words[1]))
    count = math.prod(shape)
    raw = generator.random_raw(-(-count * bit_width // 64)).astype("<u8")
    return raw.view(f"<u{bit_width // 8}")[:count].astype(f"uint{bit_width}").reshape(shape)


def _on_host(fn, out: jax.ShapeDtypeStruct, *args):
    return jax.pure_callback(fn, out, *args, vmap_method="sequential")


def _seed(seed: jax.Array) -> jax.Array:
    return _on_host(_seed_host, jax.ShapeDtypeStruct((2,), jnp.uint32), seed)


def _fold_in(key: jax.Array, data) -> jax.Array:
    data = jnp.asarray(data).astype(jnp.uint32)
    return _on_host(_fold_in_host, jax.ShapeDtypeStruct((2,), jnp.uint32), key, data)


def _split(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    out = jax.ShapeDtypeStruct((*shape, 2), jnp.uint32)
    return _on_host(lambda k: _split_host(k, tuple(shape)), out, key)


def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    out = jax.ShapeDtypeStruct(tuple(shape), jnp.dtype(f"uint{bit_width}"))
    return _on_host(lambda k: _bits_host(k, bit_width, tuple(shape)), out, key)


HOST_PHILOX = define_prng_impl(
    key_shape=(2,),
    seed=_seed,
    split=_split,
    random_bits=_random_bits,
    fold_in=_fold_in,
    name="amla_jax_host_philox",
)


def host_key(key: jax.Array) -> jax.Array:
    """A `HOST_PHILOX` key from ``key``: its data when it has two words (JAX's default
    Threefry), else its words mixed down to two (``SeedSequence``)."""
    data = jax.random.key_data(key).reshape(-1).astype(jnp.uint32)
    if data.shape != (2,):
        mix = lambda d: np.random.SeedSequence(_entropy(d)).generate_state(2, _WORD)  # noqa: E731
        data = _on_host(mix, jax.ShapeDtypeStruct((2,), jnp.uint32), data)
    return jax.random.wrap_key_data(data, impl=HOST_PHILOX)
