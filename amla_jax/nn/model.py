"""The only place where a `NetworkSpec` becomes layers: stem → body → head.

Synopsis::

    from amla_jax.nn.model import build_model, init_variables
    model = build_model(spec, num_classes=10)
    variables = init_variables(model, key, (32, 32, 3))
    logits, aux_logits = model.apply(variables, images, train=False)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.nn.convs import conv_general_dilated
from amla_jax.nn.enas import EnasMacroBody
from amla_jax.nn.layers import batch_cutout, batch_norm, conv_init, local_response_norm
from amla_jax.nn.macro import MacroBody
from amla_jax.nn.micro import MicroBody
from amla_jax.nn.nb201 import NB201Body
from amla_jax.spec import BlockSpec, EnasMacroSpec, MacroSpec, MicroSpec, NB201Spec, NetworkSpec

# The Flax body of each spec body class.
BODIES = {
    MacroSpec: MacroBody,
    MicroSpec: MicroBody,
    EnasMacroSpec: EnasMacroBody,
    NB201Spec: NB201Body,
}


def _pair(value, default: int) -> tuple[int, int]:
    if value is None:
        return default, default
    if isinstance(value, int):
        return value, value
    return tuple(value)


def _stem_block(
    block: BlockSpec, x: jax.Array, train: bool, name: str, module: nn.Module
) -> jax.Array:
    """Applies one stem block (AMLA's ``cell_init`` block types, A.4)."""
    kind = block.block
    if kind == "conv2d":
        use_bn = bool(block.get("batch_norm", False))
        x = nn.Conv(
            block.get("outputs"),
            _pair(block.get("kernel_size"), 3),
            strides=_pair(block.get("stride"), 1),
            use_bias=bool(block.get("use_bias", not use_bn)),
            kernel_init=conv_init,
            conv_general_dilated=conv_general_dilated,  # 1x1 stems: a matmul on CPU
            name=name,
        )(x)
        if use_bn:
            # bn_epsilon: 1e-5 is PyTorch's (NB201's stem); TF-slim's 1e-3 stays the default.
            momentum, epsilon = block.get("bn_momentum", 0.9), block.get("bn_epsilon", 1e-3)
            x = batch_norm(train, momentum, scale=True, name=f"{name}_bn", epsilon=epsilon)(x)
        return nn.relu(x) if block.get("activation", "relu") == "relu" else x
    if kind in ("max_pool", "avg_pool"):
        pool = nn.max_pool if kind == "max_pool" else nn.avg_pool
        size = _pair(block.get("kernel_size"), 3)
        kwargs = {} if kind == "max_pool" else {"count_include_pad": False}
        return pool(
            x, window_shape=size, strides=_pair(block.get("stride"), 2), padding="SAME", **kwargs
        )
    if kind == "lrn":
        return local_response_norm(x)
    if kind == "dropout":
        return nn.Dropout(1.0 - block.get("keep_prob", 0.8), deterministic=not train)(x)
    if kind == "cutout":
        if not train:
            return x
        key = module.make_rng("dropout")
        return batch_cutout(x, key, block.get("size", 16), bool(block.get("per_image", False)))
    if kind == "batch_norm":
        return batch_norm(train, block.get("bn_momentum", 0.9), scale=True, name=name)(x)
    if kind == "relu":
        return nn.relu(x)
    raise ValueError(f"stem block {kind!r} has no implementation")


def _head_block(
    block: BlockSpec, x: jax.Array, train: bool, num_classes: int, name: str
) -> jax.Array:
    """Applies one head block (AMLA's ``cell_classification``, A.4)."""
    kind = block.block
    if kind == "reduce_mean":
        return jnp.mean(x, axis=(1, 2))
    if kind == "flatten":
        return x.reshape(x.shape[0], -1)
    if kind == "dropout":
        return nn.Dropout(1.0 - block.get("keep_prob", 0.8), deterministic=not train)(x)
    if x.ndim > 2:
        x = x.reshape(x.shape[0], -1)
    if kind == "fc":
        return nn.relu(nn.Dense(block.get("outputs"), kernel_init=conv_init, name=name)(x))
    # fc-final: truncated normal with stddev 1/inputs (AMLA's "inputs" field), zero bias.
    fan_in = block.get("inputs") or x.shape[-1]
    init = nn.initializers.truncated_normal(stddev=1.0 / fan_in)
    return nn.Dense(num_classes, kernel_init=init, use_bias=block.get("use_bias", True), name=name)(
        x
    )


class Network(nn.Module):
    """Stem (layers of concatenated branches) → body → head.

    ``__call__(x, train, drop_path_rate)`` returns ``(logits, aux_logits)``, where
    ``aux_logits`` is a tuple (empty for bodies without auxiliary heads).
    """

    spec: NetworkSpec
    num_classes: int
    fuse_branches: bool = True  # `MacroBody.fuse_branches`

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, drop_path_rate=0.0):
        for i, layer in enumerate(self.spec.stem):
            outs = [
                _stem_block(block, x, train, f"stem{i}_{j}", self) for j, block in enumerate(layer)
            ]
            x = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-1)
        x, aux_logits = self._body()(x, train=train, drop_path_rate=drop_path_rate)
        for i, block in enumerate(self.spec.head):
            x = _head_block(block, x, train, self.num_classes, f"head{i}")
        return x, tuple(aux_logits)

    def _body(self) -> nn.Module:
        body = self.spec.body
        cls = BODIES[type(body)]
        if isinstance(body, MacroSpec):
            width, fuse = self.spec.stem_width, self.fuse_branches
            return cls(body, stem_width=width, fuse_branches=fuse, name="body")
        return cls(body, num_classes=self.num_classes, name="body")


def build_model(spec: NetworkSpec, num_classes: int, *, fuse_branches: bool = True) -> Network:
    """The Flax module for ``spec`` with ``num_classes`` outputs. ``fuse_branches=False``
    computes every envelope branch on its own (`MacroBody.fuse_branches`): the same
    function and variables, the network's own arithmetic (`count_flops` uses it)."""
    return Network(spec, num_classes, fuse_branches)


def init_variables(
    model: Network, key: jax.Array, input_shape: tuple[int, ...], batch_size: int = 2
) -> dict:
    """Initialises every collection (params, batch_stats, nac_stats) from ``key``.

    Initialises in training mode so that training-only modules (auxiliary heads) exist.
    """
    params_key, dropout_key = jax.random.split(key)
    x = jnp.zeros((batch_size, *input_shape), jnp.float32)
    return model.init({"params": params_key, "dropout": dropout_key}, x, train=True)
