"""AMLA's macro body: envelope cells, skip inputs with the 1x1 bottleneck, and wideners.

Layers are addressed by 1-based cellnumbers; cellnumber 0 is the stem output (A.2). A
filter layer at cellnumber ``c`` is the Flax module ``Cell{c}`` and its branches keep
their JSON keys (``Branch4``), so the MeanSSS of a branch sits in ``nac_stats`` at
``Cell{c}/Branch{j}/stats`` and a skip scalar in ``params`` at ``Cell{c}/scalar_{src}``:
AMLA's own names, read back by `amla_jax.stats`.

Synopsis::

    body = MacroBody(spec.body, stem_width=64)
    features = body.apply(variables, stem_output, train=False)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.ops import EnvelopeBranch, conv_init, max_pool_same
from amla_jax.spec import LayerSpec, MacroSpec


def skip_sources(layer: LayerSpec, cellnumber: int) -> tuple[int, ...]:
    """The extra sources of a filter layer (the predecessor is implicit, A.2)."""
    if layer.inputs == "all":
        return tuple(range(cellnumber - 1))  # the stem (0) and all but the predecessor
    return tuple(layer.inputs or ())


def _downsample_to(x: jax.Array, height: int) -> jax.Array:
    """Repeated 2x2 stride-2 SAME max-pools until ``x`` is ``height`` tall (A.2)."""
    while x.shape[1] > height:
        x = max_pool_same(x)
    return x


class EnvelopeCell(nn.Module):
    """A filter layer: the skip bottleneck when it has ``inputs``, then its branches
    concatenated in sorted branch-key order (A.1, A.2).

    The bottleneck is concat[x_prev, s_k · pool(nets[k]) ...] → 1x1 conv back to
    C(x_prev) with bias and ReLU; s_k is a learnable scalar per edge, N(0.5, 0.01).
    """

    layer: LayerSpec
    cellnumber: int
    dropout: float
    bn_momentum: float

    @nn.compact
    def __call__(self, nets: list[jax.Array], train: bool) -> jax.Array:
        x = nets[-1]
        if self.layer.inputs is not None:
            parts = [x]
            for src in skip_sources(self.layer, self.cellnumber):
                scalar = self.param(f"scalar_{src}", _scalar_init)
                parts.append(scalar * _downsample_to(nets[src], x.shape[1]))
            x = jnp.concatenate(parts, axis=-1)
            x = nn.Conv(nets[-1].shape[-1], (1, 1), kernel_init=conv_init, name="bottleneck")(x)
            x = nn.relu(x)
        width = self.layer.outputs // len(self.layer.branches)
        outs = [
            EnvelopeBranch(op, width, self.dropout, self.bn_momentum, name=key)(x, train)
            for key, op in self.layer.branches
        ]
        return jnp.concatenate(outs, axis=-1)


def _scalar_init(key: jax.Array) -> jax.Array:
    return 0.5 + 0.01 * jax.random.normal(key, ())


class MacroBody(nn.Module):
    """Interprets a `MacroSpec`; keeps every output by cellnumber for skip inputs.

    Attributes:
      spec: the body.
      stem_width: AMLA's C_init; the widener's conv width starts here and doubles after
        each widener (A.3).
      bn_momentum: running-average momentum of the branch BatchNorms.
    """

    spec: MacroSpec
    stem_width: int
    bn_momentum: float = 0.99

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, drop_path_rate=0.0):
        nets = [x]
        widener_width = self.stem_width
        for index, layer in enumerate(self.spec.layers):
            cellnumber = index + 1
            if layer.kind == "filters":
                x = EnvelopeCell(
                    layer,
                    cellnumber,
                    self.spec.branch_dropout,
                    self.bn_momentum,
                    name=f"Cell{cellnumber}",
                )(nets, train)
            elif layer.kind == "widener":
                conv = nn.Conv(
                    widener_width,
                    (3, 3),
                    strides=(2, 2),
                    kernel_init=conv_init,
                    name=f"Widener{cellnumber}",
                )
                x = jnp.concatenate([max_pool_same(x), nn.relu(conv(x))], axis=-1)
                widener_width *= 2
            elif layer.kind == "widener2":
                # ENAS's pool layer, as intended (amla_spec.md D.1): concat the current
                # output with the listed inputs, then a 2x2 max-pool.
                parts = [x] + [_downsample_to(nets[k], x.shape[1]) for k in layer.inputs or ()]
                x = max_pool_same(jnp.concatenate(parts, axis=-1))
            nets.append(x)  # a placeholder passes its input through but takes a cellnumber
        return x, ()
