"""Export a trained network for inference elsewhere: StableHLO, ONNX or a SavedModel.

Modules: `network` (reading a run's trained network in eval mode: `load_network`,
`InferenceNetwork`), `formats` (one writer per format in `FORMATS`, `export_network`,
which reloads every artifact and checks its logits), `cli` (``amla export``).

Synopsis::

    from amla_jax.export import export_network, load_network
    net = load_network("runs/x")                  # EMA weights, recalibrated BatchNorm
    export_network(net, "stablehlo", "runs/x/export/stablehlo").max_abs_diff

    amla export runs/x --format stablehlo|onnx|savedmodel
"""

from amla_jax.export.cli import main
from amla_jax.export.network import ExportError, InferenceNetwork, load_network

__all__ = ["ExportError", "InferenceNetwork", "load_network", "main"]
