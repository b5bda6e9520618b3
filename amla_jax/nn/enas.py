"""The ENAS macro body (Pham et al. 2018) as the released fixed-arc code builds it.

See `amla_jax.spec.enas` for the arc encoding and what the layers are.

Synopsis::

    from amla_jax.nn.enas import EnasMacroBody
    features, _ = EnasMacroBody(spec.body, num_classes=10).apply(variables, x, train=False)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.nn.micro_ops import FactorizedReduce, affine_batch_norm, conv, pool
from amla_jax.spec.enas import ENAS_MACRO_OPS, EnasMacroSpec


class EnasMacroBody(nn.Module):
    """The ENAS macro body; returns (features, ()) (ENAS macro has no auxiliary head)."""

    spec: EnasMacroSpec
    num_classes: int
    bn_momentum: float = 0.9

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, drop_path_rate=0.0):
        del drop_path_rate  # the ENAS macro net has no drop-path
        width, kept = self.spec.channels, [x]
        for k, (op_id, *skips) in enumerate(self.spec.layers):
            out = self._op(kept[-1], op_id, width, train, f"layer{k}")
            if k > 0:
                chosen = [kept[i] for i, bit in enumerate(skips) if bit]
                out = jnp.concatenate([*chosen, out], axis=-1)
                out = conv(nn.relu(out), width, (1, 1), name=f"layer{k}_skip")
                out = affine_batch_norm(out, train, self.bn_momentum, f"layer{k}_skip_bn")
            kept.append(out)
            if k in self.spec.pool_layers:
                width *= 2
                kept = [
                    FactorizedReduce(
                        width, 2, self.bn_momentum, relu=False, name=f"pool{k}_from{i}"
                    )(t, train)
                    for i, t in enumerate(kept)
                ]
        return kept[-1], ()

    def _op(self, x: jax.Array, op_id: int, width: int, train: bool, name: str) -> jax.Array:
        kind, size = ENAS_MACRO_OPS[op_id]
        momentum = self.bn_momentum
        if kind in ("avg", "max"):
            x = affine_batch_norm(
                conv(x, width, (1, 1), name=f"{name}_1x1"), train, momentum, f"{name}_bn0"
            )
            return pool(nn.relu(x), kind, size, 1)
        x = affine_batch_norm(
            conv(nn.relu(x), width, (1, 1), name=f"{name}_1x1"), train, momentum, f"{name}_bn0"
        )
        x = nn.relu(x)
        if kind == "sep" and not self.spec.sep_as_conv:
            x = conv(x, width, (size, size), groups=width, name=f"{name}_depthwise")
            x = conv(x, width, (1, 1), name=f"{name}_pointwise")
        else:
            x = conv(x, width, (size, size), name=f"{name}_{size}x{size}")
        return affine_batch_norm(x, train, momentum, f"{name}_bn1")
