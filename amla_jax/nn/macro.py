"""AMLA's macro body: envelope branches and cells, skip inputs with the 1x1 bottleneck,
and wideners.

The envelope branches follow AMLA's ``cell_main`` (amla_spec.md A.1): conv (no bias) →
BatchNorm (offset only, TF-slim's defaults) → ReLU → statistics tap → dropout. The
statistics tap accumulates AMLA's MeanSSS (A.6) into the ``nac_stats`` collection inside
the jitted training step, so construction never parses logs.

Layers are addressed by 1-based cellnumbers; cellnumber 0 is the stem output (A.2). A
filter layer at cellnumber ``c`` is the Flax module ``Cell{c}`` and its branches keep
their JSON keys (``Branch4``), so the MeanSSS of a branch sits in ``nac_stats`` at
``Cell{c}/Branch{j}/stats`` and a skip scalar in ``params`` at ``Cell{c}/scalar_{src}``:
AMLA's own names, read back by `amla_jax.train`.

On CPU, a cell up to a measured size runs its branches as one convolution per kernel size
(`amla_jax.nn.envelope_fused`): the same variables and function, far fewer ops to compile.

Synopsis::

    body = MacroBody(spec.body, stem_width=64)
    features = body.apply(variables, stem_output, train=False)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from amla_jax.nn.convs import conv_general_dilated
from amla_jax.nn.envelope_fused import fused_branches, fuses
from amla_jax.nn.layers import Conv, DepthwiseConv, batch_norm, conv_init, max_pool_same
from amla_jax.spec.macro import LayerSpec, MacroSpec, parse_macro_op, skip_sources


class MeanSquareTap(nn.Module):
    """Accumulates AMLA's MeanSSS of its input in ``nac_stats`` during training.

    MeanSSS = mean over (h, w, c) of Σ_batch x² / steps, i.e. batch size × the running
    mean of x² (amla_spec.md A.6). The tap is an identity on its input.
    """

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        total = self.variable("nac_stats", "meansss_sum", lambda: jnp.zeros((), jnp.float32))
        count = self.variable("nac_stats", "count", lambda: jnp.zeros((), jnp.float32))
        if train and self.is_mutable_collection("nac_stats") and not self.is_initializing():
            sq = jax.lax.stop_gradient(x).astype(jnp.float32) ** 2
            total.value = total.value + jnp.mean(sq) * x.shape[0]
            count.value = count.value + 1.0
        return x


class EnvelopeBranch(nn.Module):
    """One envelope branch: conv (or depthwise + pointwise) → BN → ReLU → tap → dropout."""

    op: str
    features: int
    dropout: float = 0.2
    bn_momentum: float = 0.99

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        kernel, separable = parse_macro_op(self.op)
        if separable:
            x = DepthwiseConv(kernel, name="depthwise")(x)
            x = nn.Conv(
                self.features,
                (1, 1),
                use_bias=False,
                kernel_init=conv_init,
                conv_general_dilated=conv_general_dilated,  # a matmul on CPU
                name="pointwise",
            )(x)
        else:
            x = Conv(self.features, kernel, name="conv")(x)
        x = batch_norm(train, self.bn_momentum, name="bn")(x)
        x = MeanSquareTap(name="stats")(nn.relu(x), train)
        return nn.Dropout(self.dropout, deterministic=not train)(x)


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
    fuse: bool = True

    @nn.compact
    def __call__(self, nets: list[jax.Array], train: bool) -> jax.Array:
        x = nets[-1]
        if self.layer.inputs is not None:
            parts = [x]
            for src in skip_sources(self.layer, self.cellnumber):
                scalar = self.param(f"scalar_{src}", _scalar_init)
                parts.append(scalar * _downsample_to(nets[src], x.shape[1]))
            x = jnp.concatenate(parts, axis=-1)
            x = nn.Conv(
                nets[-1].shape[-1],
                (1, 1),
                kernel_init=conv_init,
                conv_general_dilated=conv_general_dilated,  # a matmul on CPU
                name="bottleneck",
            )(x)
            x = nn.relu(x)
        branches = self.layer.branches
        width = self.layer.outputs // len(branches)
        _, height, cols, channels = x.shape
        if self.fuse and fuses(branches, height, cols, channels, width * len(branches)):
            return fused_branches(self, x, branches, width, self.dropout, self.bn_momentum, train)
        outs = [
            EnvelopeBranch(op, width, self.dropout, self.bn_momentum, name=key)(x, train)
            for key, op in branches
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
      fuse_branches: run a cell's branches as one convolution per kernel size where
        `envelope_fused.fuses` says it pays (small cells on CPU); False: always per branch.
    """

    spec: MacroSpec
    stem_width: int
    bn_momentum: float = 0.99
    fuse_branches: bool = True

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
                    self.fuse_branches,
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
