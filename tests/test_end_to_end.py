"""End-to-end runs through the public entry point on real (digits) data; marked slow."""

from __future__ import annotations

import json

import pytest
from test_cli import amla

pytestmark = pytest.mark.slow


def _rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "candidates.jsonl").read_text().splitlines()]


def test_amla_run_network_reaches_95_percent_on_digits(tmp_path):
    config = "examples/amla/config.run.json"  # as the README writes it, from the repo root
    proc = amla(
        "algo=fixed",
        f"spec={config}",
        "train.steps=400",
        "train.progress=false",
        f"hydra.run.dir={tmp_path}",
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = _rows(tmp_path)
    assert row["metrics"]["test/accuracy"] >= 0.95, row["metrics"]
    assert row["num_params"] > 20_000_000
    for name in (".hydra/config.yaml", "metrics.jsonl", "spec.json", "best_spec.json"):
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert (tmp_path / "checkpoints" / "candidate_0").is_dir()
    # Rerunning the finished run says so and trains nothing.
    again = amla(
        "algo=fixed",
        f"spec={config}",
        "train.steps=400",
        "train.progress=false",
        f"hydra.run.dir={tmp_path}",
        timeout=600,
    )
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr
    assert len(_rows(tmp_path)) == 1


def _run_python(script: str, cwd, env) -> None:
    """Runs ``script`` in a fresh Python (20 minutes at most); it must exit with 0."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def _tiny_cifar10_nac(data_dir, run_dir) -> list[str]:
    """``algo=nac dataset=cifar10 debug=smoke`` on a tiny EnvelopeNet (overrides)."""
    return [
        "algo=nac",
        "dataset=cifar10",
        f"dataset.data_dir={data_dir}",
        "debug=smoke",
        "model.network.stem.0.0.outputs=8",
        "algo.options.layers_per_stage=[1,1,1]",
        "~algo.options.envelopecell",  # two branch types: a quick compile at 32x32
        "+algo.options.envelopecell={Branch1:1x1,Branch2:3x3sep}",
        f"hydra.run.dir={run_dir}",
    ]


def test_first_cifar10_run_downloads_and_prepares_then_later_runs_read(tmp_path):
    """`python -m amla_jax algo=nac dataset=cifar10 debug=smoke` in a fresh data dir, no
    TensorFlow, the download faked (tiny files in CIFAR's published binary format): the
    first run obtains and prepares the data itself; a second run downloads nothing and
    finds the same candidates."""
    import os  # noqa: PLC0415

    from conftest import ROOT  # noqa: PLC0415
    from published_fakes import install_in_subprocess, write_published  # noqa: PLC0415

    write_published("cifar10", tmp_path / "web", num_train=80, num_test=24)
    log = tmp_path / "fetched.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}

    def run(run_dir):
        argv = _tiny_cifar10_nac(tmp_path / "tfds", run_dir)
        script = install_in_subprocess("cifar10", tmp_path / "web", log) + (
            "import sys\n"
            "from amla_jax.__main__ import main\n"
            f"sys.argv = ['amla_jax', *{argv!r}]\n"
            "main()\n"
        )
        _run_python(script, tmp_path, env)
        return _rows(run_dir)

    first = run(tmp_path / "run1")
    assert log.read_text().split() == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]
    assert (tmp_path / "tfds" / "cifar10" / "3.0.2" / "dataset_info.json").is_file()
    assert [r["id"] for r in first] == [0, 1] and first[1]["num_params"] != first[0]["num_params"]
    second = run(tmp_path / "run2")
    assert len(log.read_text().split()) == 1  # prepared files read, nothing downloaded
    key = ("num_params", "metrics")
    assert [{k: r[k] for k in key} for r in second] == [{k: r[k] for k in key} for r in first]


def test_nac_on_cifar10_runs_end_to_end_under_tfds_mock(tmp_path):
    """`python -m amla_jax algo=nac dataset=cifar10` through the real tfds code path
    (tfds.testing.mock_data: random examples with CIFAR-10's real features), tiny budget."""
    import os  # noqa: PLC0415

    from conftest import ROOT  # noqa: PLC0415

    argv = _tiny_cifar10_nac(tmp_path / "tfds", tmp_path / "run")
    script = (
        "import sys, tensorflow_datasets as tfds\n"
        "from amla_jax.__main__ import main\n"
        f"sys.argv = ['amla_jax', *{argv!r}]\n"
        "with tfds.testing.mock_data(num_examples=64):\n"
        "    main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    _run_python(script, tmp_path, env)
    run_dir = tmp_path / "run"
    rows = _rows(run_dir)
    assert [r["id"] for r in rows] == [0, 1]
    assert all(r["algorithm"] == "nac" and r["utilities"] for r in rows)
    assert rows[1]["num_params"] != rows[0]["num_params"]  # the second network was constructed
    best = json.loads((run_dir / "best_spec.json").read_text())
    assert (
        best["arch"]["type"] == "macro" and best["init_cell"]["Layer0"]["Branch0"]["outputs"] == 8
    )
