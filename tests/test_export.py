"""amla export: each format's artifact reloads and gives amla_jax's eval-mode logits."""

from __future__ import annotations

import importlib.util
import json

import jax
import numpy as np
import optax
import pytest
from conftest import TINY_NETWORK

from amla_jax import rundir
from amla_jax.amla import save_spec
from amla_jax.export import load_network, main
from amla_jax.nn import build_model
from amla_jax.spec import NetworkSpec
from amla_jax.train import create_train_state, save_train_state

IMAGE_SHAPE = (8, 8, 1)  # digits


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run directory as a search leaves it: one candidate, its train state with EMA
    weights and BatchNorm statistics that differ from the trained ones, the config."""
    spec = NetworkSpec.from_json(TINY_NETWORK)
    run_dir = tmp_path_factory.mktemp("run")
    model = build_model(spec, 10)
    state = create_train_state(model, jax.random.key(0), IMAGE_SHAPE, optax.sgd(0.1))
    shift = lambda tree, by: jax.tree_util.tree_map(lambda x: x + by, tree)  # noqa: E731
    state = state.replace(
        ema_params=shift(state.params, 0.05), batch_stats=shift(state.batch_stats, 0.3)
    )
    save_train_state(state, run_dir / rundir.CHECKPOINTS_DIR / "candidate_0")
    row = {"id": 0, "spec": spec.to_json(), "metrics": {"validation/accuracy": 0.5},
           "num_params": 1, "train_seconds": 0.0, "compile_seconds": 0.0}  # fmt: skip
    rundir.append_row(run_dir / rundir.CANDIDATES, row)
    save_spec(spec, run_dir / rundir.BEST_SPEC)
    (run_dir / rundir.HYDRA_DIR).mkdir()
    config = "dataset:\n  name: digits\noptim:\n  ema_decay: 0.99\n"
    (run_dir / rundir.HYDRA_DIR / "config.yaml").write_text(config)
    return run_dir, spec, state


def amla_logits(spec, state, images, params):
    variables = {"params": params, "batch_stats": state.batch_stats, "nac_stats": state.nac_stats}
    apply = jax.jit(lambda v, x: build_model(spec, 10).apply(v, x, train=False)[0])
    return np.asarray(apply(variables, images))


def images(batch: int) -> jax.Array:
    return jax.random.normal(jax.random.key(7), (batch, *IMAGE_SHAPE))


def test_stablehlo_export_of_a_run_reloads_with_the_ema_logits(trained_run, capsys):
    run_dir, spec, state = trained_run
    assert main([str(run_dir), "--format", "stablehlo"]) == 0
    folder = run_dir / "export" / "stablehlo"
    assert "reloaded logits within" in capsys.readouterr().out
    manifest = json.loads((folder / "export.json").read_text())
    assert manifest["weights"] == "ema" and manifest["input"]["shape"] == ["batch", 8, 8, 1]
    # A fresh deserialization, at a batch size the export never saw (the batch is symbolic).
    exported = jax.export.deserialize(bytearray((folder / "model.stablehlo").read_bytes()))
    got = np.asarray(exported.call(images(3)))
    expected = amla_logits(spec, state, images(3), state.ema_params)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.max(np.abs(expected - amla_logits(spec, state, images(3), state.params))) > 1e-3


def test_spec_and_checkpoint_with_the_trained_weights(trained_run, tmp_path):
    run_dir, spec, state = trained_run
    spec_file = run_dir / rundir.BEST_SPEC
    checkpoint = run_dir / rundir.CHECKPOINTS_DIR / "candidate_0"
    net = load_network(spec_file, checkpoint, weights="trained", image_shape=IMAGE_SHAPE)
    assert (net.num_classes, net.image_shape, net.weights) == (10, IMAGE_SHAPE, "trained")
    expected = amla_logits(spec, state, images(2), state.params)
    np.testing.assert_allclose(
        np.asarray(jax.jit(net.forward)(images(2))), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.skipif(
    not (importlib.util.find_spec("jax2onnx") and importlib.util.find_spec("onnxruntime")),
    reason="the onnx extra is not installed",
)
def test_onnx_export_reloads_in_onnxruntime_with_the_ema_logits(trained_run, tmp_path):
    import onnxruntime

    run_dir, spec, state = trained_run
    assert main([str(run_dir), "--format", "onnx", "--out", str(tmp_path)]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    name = session.get_inputs()[0].name
    got = session.run(None, {name: np.asarray(images(3), np.float32)})[0]
    expected = amla_logits(spec, state, images(3), state.ema_params)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None, reason="the savedmodel extra is not installed"
)
def test_savedmodel_export_reloads_in_tensorflow_with_the_ema_logits(trained_run, tmp_path):
    import tensorflow as tf

    run_dir, spec, state = trained_run
    assert main([str(run_dir), "--format", "savedmodel", "--out", str(tmp_path)]) == 0
    # A fresh load in TensorFlow, at a batch size the export never saw.
    reloaded = tf.saved_model.load(str(tmp_path / "savedmodel"))
    got = reloaded.forward(tf.constant(np.asarray(images(3)), tf.float32)).numpy()
    expected = amla_logits(spec, state, images(3), state.ema_params)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is not None, reason="TensorFlow is installed"
)
def test_a_missing_extra_is_one_error_line_naming_it(trained_run, tmp_path, capsys):
    run_dir, _, _ = trained_run
    assert main([str(run_dir), "--format", "savedmodel", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "[savedmodel]" in err and "\n" not in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_usage_errors_are_one_line(trained_run, tmp_path, capsys):
    run_dir, _, _ = trained_run
    assert main([str(tmp_path), "--format", "stablehlo"]) == 2  # no candidates
    assert main([str(run_dir), "--candidate", "5"]) == 2
    assert main([str(run_dir), "--format", "tflite"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
