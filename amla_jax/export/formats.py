"""Inference artifacts of an `InferenceNetwork`, one writer per format, each reloaded and checked.

Every writer takes the eval-mode forward function (weights baked in as constants: the
artifact maps images to logits and needs nothing else), an example batch and a folder,
writes the artifact and returns it with a function that runs the *reloaded* artifact.
`export_network` then compares the reloaded artifact's logits with ``amla_jax``'s on the
example batch and refuses an artifact that disagrees. The batch dimension is symbolic
(any batch size) in every format.

Formats: ``stablehlo`` (`jax.export`, serialized; no extra package), ``onnx``
(jax2onnx, checked with onnxruntime: the ``onnx`` extra), ``savedmodel`` (jax2tf,
TensorFlow: the ``savedmodel`` extra).

Synopsis::

    from amla_jax.export import export_network, load_network
    result = export_network(load_network("runs/x"), "stablehlo", "runs/x/export")
    result.path, result.max_abs_diff          # reloaded logits vs amla_jax's
    FORMATS["my_format"] = my_writer          # (forward, example, folder) -> (path, call)
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from amla_jax.export.network import ExportError, InferenceNetwork

Writer = Callable[[Callable, np.ndarray, Path], tuple[Path, Callable]]
# float32 logits of one network computed by two compilers: a few ulps of the largest.
RELATIVE_TOLERANCE = 1e-4
MANIFEST = "export.json"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """An artifact written and checked: its path, format and logit agreement."""

    path: Path
    format: str
    max_abs_diff: float
    batch_size: int


def _require(module: str, extra: str):
    """Imports ``module`` or fails naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(
            f"--format {extra} needs the {extra} extra: pip install -e '.[{extra}]'"
        ) from None


def write_stablehlo(forward: Callable, example: np.ndarray, folder: Path) -> tuple[Path, Callable]:
    """``model.stablehlo`` (`jax.export` serialization) and its MLIR text beside it."""
    (batch,) = jax.export.symbolic_shape("batch")
    spec = jax.ShapeDtypeStruct((batch, *example.shape[1:]), jnp.float32)
    exported = jax.export.export(jax.jit(forward))(spec)
    path = folder / "model.stablehlo"
    path.write_bytes(exported.serialize())
    (folder / "model.mlir").write_text(exported.mlir_module())
    reloaded = jax.export.deserialize(bytearray(path.read_bytes()))
    return path, reloaded.call


def write_onnx(forward: Callable, example: np.ndarray, folder: Path) -> tuple[Path, Callable]:
    """``model.onnx`` (jax2onnx), reloaded with onnxruntime."""
    jax2onnx = _require("jax2onnx", "onnx")
    onnxruntime = _require("onnxruntime", "onnx")
    path = folder / "model.onnx"
    jax2onnx.to_onnx(
        forward,
        [("B", *example.shape[1:])],
        model_name="amla_jax_network",
        return_mode="file",
        output_path=str(path),
        input_names=["images"],
        output_names=["logits"],
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return path, lambda images: session.run(None, {name: np.asarray(images, np.float32)})[0]


def write_savedmodel(forward: Callable, example: np.ndarray, folder: Path) -> tuple[Path, Callable]:
    """A TensorFlow SavedModel (jax2tf, native serialization) under ``savedmodel/``."""
    tf = _require("tensorflow", "savedmodel")
    from jax.experimental import jax2tf  # noqa: PLC0415 (imports TensorFlow)

    module = tf.Module()
    module.forward = tf.function(
        jax2tf.convert(forward, polymorphic_shapes=["(b, ...)"], with_gradient=False),
        autograph=False,
        input_signature=[tf.TensorSpec((None, *example.shape[1:]), tf.float32)],
    )
    path = folder / "savedmodel"
    tf.saved_model.save(module, str(path))
    reloaded = tf.saved_model.load(str(path))
    return path, lambda images: reloaded.forward(tf.constant(images, tf.float32)).numpy()


FORMATS: dict[str, Writer] = {
    "stablehlo": write_stablehlo,
    "onnx": write_onnx,
    "savedmodel": write_savedmodel,
}
# The modules each format needs beyond amla_jax's own, checked before anything is written.
REQUIRES: dict[str, tuple[str, ...]] = {
    "onnx": ("jax2onnx", "onnxruntime"),
    "savedmodel": ("tensorflow",),
}


def example_batch(net: InferenceNetwork, batch_size: int = 4, seed: int = 0) -> np.ndarray:
    """A fixed batch of standard-normal images (the networks see standardized inputs)."""
    key = jax.random.key(seed)
    return np.asarray(jax.random.normal(key, (batch_size, *net.image_shape), jnp.float32))


def export_network(
    net: InferenceNetwork, fmt: str, folder: str | Path, batch_size: int = 4
) -> ExportResult:
    """Writes ``net`` as ``fmt`` into ``folder``, reloads it and checks its logits.

    Also writes ``<folder>/export.json``: the spec, shapes, weights, source checkpoint and
    the measured agreement.

    Raises:
      ExportError: an unknown format, a missing extra, or reloaded logits that differ
        from ``amla_jax``'s by more than `RELATIVE_TOLERANCE` of their largest magnitude.
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    for module in REQUIRES.get(fmt, ()):
        _require(module, fmt)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    variables = jax.tree_util.tree_map(jnp.asarray, net.variables)

    def forward(images):
        return dataclasses.replace(net, variables=variables).forward(images)

    example = example_batch(net, batch_size)
    path, call = FORMATS[fmt](forward, example, folder)
    expected = np.asarray(jax.jit(forward)(example))
    got = np.asarray(call(example))
    if got.shape != expected.shape:
        raise ExportError(f"{path}: reloaded logits have shape {got.shape}, not {expected.shape}")
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= RELATIVE_TOLERANCE * max(1.0, float(np.max(np.abs(expected)))):
        raise ExportError(f"{path}: reloaded logits differ from amla_jax's by {diff:.3g}")
    result = ExportResult(path, fmt, diff, batch_size)
    _write_manifest(net, result, folder / MANIFEST)
    return result


def _write_manifest(net: InferenceNetwork, result: ExportResult, path: Path) -> None:
    manifest = {
        "format": result.format,
        "artifact": result.path.name,
        "input": {"shape": ["batch", *net.image_shape], "dtype": "float32", "layout": "NHWC"},
        "output": {"shape": ["batch", net.num_classes], "name": "logits"},
        # The artifact starts where amla_jax's networks start: after the dataset pipeline.
        "preprocessing": "as amla_jax's dataset (e.g. per-channel standardization)",
        "weights": net.weights,
        "checkpoint": str(net.checkpoint),
        "check": {"batch_size": result.batch_size, "max_abs_diff": result.max_abs_diff},
        "spec": net.spec.to_json(),
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n")
