"""The entry point as a user meets it: each bad input is one ``error:`` line, exit 2.

(That every config option composes is test_config.py's.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import AMLA_EXAMPLES, ROOT


def amla(*args: str, cwd=ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "amla_jax", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_user_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0]


def test_unknown_algorithm_and_dataset(tmp_path):
    _assert_user_error(
        amla("algo=evolutionary", f"hydra.run.dir={tmp_path}"), "algo/evolutionary", "nac"
    )
    _assert_user_error(amla("dataset=svhn", f"hydra.run.dir={tmp_path}"), "dataset/svhn", "digits")


def test_bad_budgets_and_keys(tmp_path):
    _assert_user_error(amla("train.steps=-5", f"hydra.run.dir={tmp_path}"), "train.steps")
    _assert_user_error(amla("train.stepz=5", f"hydra.run.dir={tmp_path}"), "train.stepz")


def test_bad_spec_files(tmp_path):
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"arch": {"type": "macro", "network": [')
    _assert_user_error(
        amla("algo=fixed", f"spec={malformed}", f"hydra.run.dir={tmp_path}"), "not valid JSON"
    )
    config = json.loads((AMLA_EXAMPLES / "config.run.json").read_text())
    config["arch"]["network"][0]["filters"]["Branch2"] = "4x4pool"
    unknown_op = tmp_path / "unknown_op.json"
    unknown_op.write_text(json.dumps(config))
    _assert_user_error(
        amla("algo=fixed", f"spec={unknown_op}", f"hydra.run.dir={tmp_path}"), "4x4pool", "Branch2"
    )
    config["arch"]["network"][0] = {"filters": {"Branch1": "1x1"}, "widener": {}, "outputs": 8}
    contradictory = tmp_path / "contradictory.json"
    contradictory.write_text(json.dumps(config))
    _assert_user_error(
        amla("algo=fixed", f"spec={contradictory}", f"hydra.run.dir={tmp_path}"), "has both"
    )


def test_offline_first_use_of_cifar10_says_where_to_place_the_file(tmp_path):
    # The first use downloads the published archive; without network that is one line
    # naming the URL and the folder to put the file in by hand.
    argv = [
        "dataset=cifar10",
        f"dataset.data_dir={tmp_path / 'tfds'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    script = (
        "import sys, urllib.error\n"
        "from amla_jax.data import download\n"
        "def offline(url):\n"
        "    raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')\n"
        "download.open_url = offline\n"
        "from amla_jax.__main__ import main\n"
        f"sys.argv = ['amla_jax', *{argv!r}]\n"
        "main()\n"
    )
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    manual = tmp_path / "tfds" / "downloads" / "manual"
    _assert_user_error(
        proc, "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", f"{manual}/"
    )


def test_evolution_on_the_table_records_its_source(tmp_path):
    import pytest

    pytest.importorskip("analognasbench")
    run_dir = tmp_path / "run"
    args = (
        "algo=evolution",
        "search_space=nb201",
        "evaluator=tabular",
        "evaluator.column=analog_accuracy",
        "algo.iterations=30",
        f"hydra.run.dir={run_dir}",
    )
    proc = amla(*args)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (run_dir / "candidates.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and rows[0]["source"].endswith(":analog_accuracy")
    assert rows[0]["metrics"]["validation/accuracy"] == rows[0]["metrics"]["table/analog_accuracy"]
    assert rows[0]["train_seconds"] == rows[0]["compile_seconds"] == 0
    meta = json.loads((run_dir / "evaluator.json").read_text())
    assert (meta["evaluator"], meta["column"]) == ("tabular", "analog_accuracy")
    again = amla(*args)
    assert again.returncode == 0 and "already finished" in again.stdout


def test_missing_tabular_extra_names_the_install_command(tmp_path):
    shadow = tmp_path / "shadow" / "analognasbench"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'analognasbench'\")\n")
    env = {**os.environ, "PYTHONPATH": str(shadow.parent), "AMLA_JAX_CACHE": str(tmp_path / "c")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "amla_jax",
            "algo=evolution",
            "search_space=nb201",
            "evaluator=tabular",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _assert_user_error(proc, "analog-nasbench", 'pip install -e ".[tabular]"')
