"""Flax networks from specs: `build_model` is the only place a `NetworkSpec` becomes layers.

Modules: `layers` (BatchNorm, SAME padding, CPU-fast convs, LRN, cutout), `macro`
(AMLA's envelope branches and cells), `micro_ops` / `micro` (cell DAGs: DARTS, ENAS,
NASNet, AMLA), `enas` (the ENAS macro body), `nb201` (the NAS-Bench-201 body), `model`
(stem → body → head), `counts` (parameters and FLOPs).

Synopsis::

    from amla_jax.nn import build_model, count_params, init_variables
    model = build_model(spec, num_classes=10)
    variables = init_variables(model, jax.random.key(0), (32, 32, 3))
    logits, aux_logits = model.apply(variables, images, train=False)
    count_params(spec, (32, 32, 3), 10)
"""

from amla_jax.nn.counts import count_flops, count_params, param_count
from amla_jax.nn.model import BODIES, Network, build_model, init_variables

__all__ = [
    "BODIES",
    "Network",
    "build_model",
    "count_flops",
    "count_params",
    "init_variables",
    "param_count",
]
