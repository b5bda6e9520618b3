"""Bad inputs at the edges (issue #10): one ``error:`` line naming the key or file, exit 2,
no traceback, no run directory. In-process ``main()`` calls of the three entry points;
the whole table of bad inputs is experiments/bad_inputs/run.py."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import AMLA_EXAMPLES

from amla_jax import __main__ as entry
from amla_jax.config import ConfigError, RunConfig
from amla_jax.report.cli import main as report_main
from amla_jax.tasks.cli import main as amla_main
from amla_jax.validate import check_config

RUN = json.loads((AMLA_EXAMPLES / "config.run.json").read_text())
NAC = json.loads((AMLA_EXAMPLES / "config.nac.construction.json").read_text())
SMOKE = ["debug=smoke", "train.steps=1"]


def _one_error(text: str, *words: str) -> None:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("warning")]
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in text
    for word in words:
        assert word in lines[0], lines[0]


def _run_main(argv, tmp_path, monkeypatch, capsys) -> str:
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["amla_jax", *argv, f"hydra.run.dir={tmp_path / 'run'}"])
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    assert exit_info.value.code == 2
    assert not (tmp_path / "run").exists()
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "override, words",
    [
        ("+foo=bar", ["foo", "unknown key"]),
        ("+train.zzz=1", ["train.zzz"]),
        ("train.steps=0", ["train.steps"]),
        ("train.steps=99999999999999999999", ["train.steps", "2147483647"]),
        ("train.batch_size=0", ["train.batch_size"]),
        ("optim.learning_rate=-1", ["optim.learning_rate"]),
        ("optim.learning_rate=nan", ["optim.learning_rate"]),
        ("optim.clip_norm=-1", ["optim.clip_norm", "null"]),
        ("optim.momentum=1.5", ["optim.momentum"]),
        ("optim.label_smoothing=1.5", ["optim.label_smoothing"]),
        ("optim.optimizer=foo", ["optim.optimizer"]),
        ("algo.iterations=-1", ["algo.iterations"]),
        ("model.network.head.3.outputs=1000000000000", ["model.network", "outputs"]),
    ],
)
def test_bad_override(override, words, tmp_path, monkeypatch, capsys):
    _one_error(_run_main([*SMOKE, override], tmp_path, monkeypatch, capsys), *words)


def _edit(base: dict, path: str, value) -> str:
    data = json.loads(json.dumps(base))
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = data
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    "text, words",
    [
        (b"\xff\xfe\x00binary", ["bad.json", "UTF-8"]),
        ("[" * 100_000 + "]" * 100_000, ["bad.json", "deeply"]),
        (_edit(RUN, "arch.branch_dropout", "abc"), ["bad.json", "branch_dropout"]),
        (_edit(RUN, "init_cell.Layer0.Branch0.kernel_size", "abc"), ["bad.json", "kernel_size"]),
        (_edit(RUN, "init_cell.Layer0.Branch0.kernel_size", [-3, -3]), ["kernel_size"]),
        (_edit(RUN, "classification_cell.Layer3.Branch0.outputs", 10**12), ["outputs"]),
        (_edit(RUN, "arch.network.0.outputs", 10**12), ["arch.network[0]", "outputs"]),
        (_edit(RUN, "arch.network.0.filters.Branch1", "３x３"), ["Branch1", "unknown op"]),
        (_edit(RUN, "parameters", [1, 2]), ["bad.json", "parameters"]),
    ],
)
def test_bad_spec_file(text, words, tmp_path, monkeypatch, capsys):
    path = tmp_path / "bad.json"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    err = _run_main(["algo=fixed", "spec=bad.json", *SMOKE], tmp_path, monkeypatch, capsys)
    _one_error(err, *words)


def test_run_dir_that_is_a_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["amla_jax", "algo=fixed", "hydra.run.dir=afile"])
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    assert exit_info.value.code == 2
    _one_error(capsys.readouterr().err, "hydra.run.dir", "afile")


def _amla(args, tmp_path, monkeypatch, capsys) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AMLA_WORKSPACE", str(tmp_path / "ws"))
    assert amla_main(list(args)) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "override, words",
    [
        ("train.steps=-1", ["train.steps"]),
        ("optim.learning_rate=-1", ["optim.learning_rate"]),
        ("+foo=bar", ["foo"]),
    ],
)
def test_amla_add_bad_override_queues_nothing(override, words, tmp_path, monkeypatch, capsys):
    _one_error(_amla(["add", override], tmp_path, monkeypatch, capsys), *words)
    assert amla_main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    "path, value, words",
    [
        ("child_training.lr", {"type": "exponential_decay", "initial": 0.1,
                               "epochs_per_decay": "abc"}, ["epochs_per_decay"]),
        ("parameters.arch_name", ["a", "b"], ["arch_name"]),
        ("parameters.iterations", -1, ["algo.iterations"]),
    ],
)  # fmt: skip
def test_amla_add_bad_amla_config(path, value, words, tmp_path, monkeypatch, capsys):
    (tmp_path / "bad.json").write_text(_edit(NAC, path, value))
    _one_error(_amla(["add", "bad.json"], tmp_path, monkeypatch, capsys), *words)


def test_label_smoothing_is_reported_not_dropped(tmp_path, monkeypatch, capsys):
    (tmp_path / "c.json").write_text(_edit(NAC, "child_training.label_smoothing", 0.1))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AMLA_WORKSPACE", str(tmp_path / "ws"))
    assert amla_main(["add", "c.json", "dataset=digits"]) == 0
    assert "label_smoothing" in capsys.readouterr().err


def test_broken_workspaces(tmp_path, monkeypatch, capsys):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "tasks.db").write_bytes(b"not a database" * 100)
    _one_error(_amla(["list"], tmp_path, monkeypatch, capsys), "tasks.db", "move it aside")
    (tmp_path / "afile").write_text("x")
    err = _amla(["list", "--workspace", "afile/ws"], tmp_path, monkeypatch, capsys)
    _one_error(err, "afile", "--workspace")


@pytest.mark.parametrize("setup", ["file", "empty", "missing"])
def test_report_on_bad_directories(setup, tmp_path, capsys):
    target = tmp_path / "target"
    if setup == "file":
        target.write_text("x")
    elif setup == "empty":
        target.mkdir()
    assert report_main([str(target)]) == 2
    _one_error(capsys.readouterr().err, "target")


def test_check_config_for_library_callers():
    cfg = RunConfig()
    cfg.optim.clip_norm = 0.0
    with pytest.raises(ConfigError, match="optim.clip_norm"):
        check_config(cfg)
    cfg = RunConfig()
    cfg.optim.clip_norm = None  # null disables clipping: allowed
    check_config(cfg)
