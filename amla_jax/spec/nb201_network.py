"""NAS-Bench-201's whole network (``TinyNetwork``) around an `NB201Spec` body. No JAX.

Synopsis::

    from amla_jax.spec import nb201_network
    spec = nb201_network("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                         "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    spec.body.arch, spec.stem_width        # the arch string, 16
"""

from __future__ import annotations

from typing import Any

from amla_jax.spec.base import freeze
from amla_jax.spec.nb201 import NB201Spec, parse_arch_string
from amla_jax.spec.network import BlockSpec, NetworkSpec


def nb201_network(
    ops: Any,
    channels: int = 16,
    cells_per_stage: int = 5,
    num_classes: int = 10,
    name: str = "",
) -> NetworkSpec:
    """NB201's whole network (``TinyNetwork``) for a cell given as op names or arch string.

    Stem: 3x3 conv (no bias) + affine BN with PyTorch's epsilon, no ReLU. Body: the
    cells, reduction blocks and the final BN-ReLU. Head: global average pool + linear.
    """
    ops = parse_arch_string(ops) if isinstance(ops, str) else ops
    body = NB201Spec(tuple(ops) if isinstance(ops, list) else ops, channels, cells_per_stage)
    stem_conv = {
        "kernel_size": [3, 3],
        "outputs": channels,
        "use_bias": False,
        "batch_norm": True,
        "bn_epsilon": 1e-5,
        "activation": "none",
    }
    stem = ((BlockSpec("conv2d", freeze(stem_conv)),),)
    head = (
        BlockSpec("reduce_mean"),
        BlockSpec("fc-final", freeze({"outputs": num_classes})),
    )
    return NetworkSpec(body, stem, head, name)
