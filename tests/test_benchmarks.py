"""Every benchmark script under experiments/ still runs, at a tiny size (a tiny network,
batch 2, one step): the numbers they record must stay reproducible at main."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY_NETWORK


def _run(script: str, *args: str, timeout: float = 600) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture
def tiny_json(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_NETWORK))
    return path


@pytest.mark.slow
def test_train_step_benchmark_runs_tiny(tiny_json, tmp_path):
    out = tmp_path / "bench.json"
    _run(
        "experiments/bench/train_step.py",
        *("--network", str(tiny_json), "--batch", "2", "--steps", "1", "--warmup", "0"),
        *("--impl", "auto", "--json", str(out)),
    )
    assert out.exists() and out.read_text().strip()


@pytest.mark.slow
def test_zoo_epoch_benchmark_runs_tiny(tmp_path):
    # The zoo benchmark times micro-cell recipes (drop-path, auxiliary head): a DARTS V2
    # network of width 4 with one normal cell per stage.
    from amla_jax import zoo

    path = tmp_path / "darts_tiny.json"
    path.write_text(json.dumps(zoo.darts_v2(channels=4, num_normal=1).to_json()))
    args = ("--network", str(path), "--batch", "2", "--steps", "1", "--epochs", "1")
    record = json.loads(_run("experiments/zoo/epoch_benchmark.py", *args).splitlines()[-1])
    assert record["steps"] == 1 and record["params"] > 0 and record["step_ms"] > 0


@pytest.mark.slow
def test_supernet_step_benchmark_runs_tiny(tmp_path):
    # Both supernets (NB201 and DARTS, channels 4) and their discrete twins, one step at
    # batch 2 on 8x8x1: the script's rows and ratios must still come out.
    out = tmp_path / "supernet.jsonl"
    _run("experiments/bench/supernet_step.py", "--tiny", "--json", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["space"] for row in rows] == ["nb201", "darts"]
    for row in rows:
        assert row["supernet"]["params"] > row["discrete"]["params"] > 0
        assert row["step_ratio"] > 0 and row["supernet"]["images_per_s"] > 0


def _search_speed():
    """experiments/bench/search_speed.py as a module (its constants are the tests' too)."""
    sys.path.insert(0, str(ROOT / "experiments" / "bench"))
    try:
        import search_speed  # noqa: PLC0415

        return search_speed
    finally:
        sys.path.pop(0)


def _has_revision(rev: str) -> bool:
    if not (ROOT / ".git").exists():
        return False
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True
    )
    return found.returncode == 0


@pytest.mark.slow
def test_search_speed_benchmark_runs_tiny(tmp_path):
    # Old commit against this tree, both NAC commands at a tiny size: each side's
    # candidates.jsonl must be read back and the ratios come out.
    OLD_REV = _search_speed().OLD_REV
    if not _has_revision(OLD_REV):
        pytest.skip(f"needs the git history with {OLD_REV} (a checkout, not a shallow copy)")
    out = tmp_path / "speed.json"
    _run("experiments/bench/search_speed.py", "--tiny", "--json", str(out), timeout=1200)
    report = json.loads(out.read_text())
    assert [run["command"] for run in report["runs"]] == ["default", "nac"]
    assert Path(report["new"]["package"]).is_relative_to(ROOT)
    assert not Path(report["old"]["package"]).is_relative_to(ROOT)  # its own checkout
    for run in report["runs"]:
        for side in ("old", "new"):
            candidates = run[side]["candidates"]
            assert len(candidates) == (2 if run["command"] == "default" else 3)
            assert all(c["compile_share"] is not None for c in candidates)
        assert run["speedup"] > 0
    assert set(report["summary"]) == {"default", "nac"}


@pytest.mark.slow
def test_run_phases_times_a_tiny_search(tmp_path):
    # The phase timers around a tiny two-candidate NAC run: every candidate is timed and
    # the phases plus what no phase covers add up to the wall time.
    TINY = _search_speed().TINY
    out = tmp_path / "phases.json"
    args = ("--json", str(out), "--", *TINY, f"hydra.run.dir={tmp_path / 'run'}")
    _run("experiments/bench/run_phases.py", *args)
    found = json.loads(out.read_text())
    phases = {row["phase"]: row for row in found["phases"]}
    assert phases["evaluate one candidate (all)"]["calls"] == 2
    top = sum(row["seconds"] for row in found["phases"] if row["depth"] == 0)
    assert top == pytest.approx(found["wall_seconds"])
    assert not found["modules_loaded"]["sklearn"]


def _torch_python() -> str:
    """A Python with torch: $TORCH_PYTHON, else this one if it has torch (CI has none)."""
    python = os.environ.get("TORCH_PYTHON")
    if python:
        return python
    if importlib.util.find_spec("torch") is None:
        pytest.skip("needs torch: set TORCH_PYTHON to a Python that has it")
    return sys.executable


@pytest.mark.slow
def test_torch_darts_twin_counts_like_the_zoo(tmp_path):
    # The PyTorch twin of DARTS V2 (torch_darts.py, beside epoch_benchmark.py) must build
    # the zoo's network: the same parameters with and without the auxiliary head.
    out = tmp_path / "torch.json"
    args = ("--device", "cpu", "--batch", "2", "--steps", "1", "--json", str(out))
    result = subprocess.run(
        [_torch_python(), str(ROOT / "experiments/zoo/torch_darts.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.splitlines()[-1])
    assert (record["params"], record["params_with_aux"]) == (3_349_342, 3_825_768)
    assert math.isfinite(record["final_loss"]) and record["images_per_s"] > 0
    assert json.loads(out.read_text()) == record


@pytest.mark.slow
def test_zoo_epoch_benchmark_twin_is_darts_only(tiny_json):
    # --torch-python compares against DARTS V2 only: any other network is a one-line error.
    args = ("--network", str(tiny_json), "--torch-python", sys.executable)
    result = subprocess.run(
        [sys.executable, str(ROOT / "experiments/zoo/epoch_benchmark.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --torch-python needs --network darts_v2")


@pytest.mark.slow
def test_xla_flags_benchmark_runs_tiny(tmp_path):
    # Two tiny two-candidate runs, the baseline and one flag variant: each run's
    # candidates come back with ratios to the baseline, and a flag that only changes
    # how LLVM optimises finds the same candidates.
    out = tmp_path / "flags.json"
    _run("experiments/bench/xla_flags.py", "--tiny", "--json", str(out), timeout=1200)
    rows = {row["variant"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"baseline", "no_expensive_llvm"}
    assert rows["baseline"]["compile_seconds_vs_baseline"] == 1.0
    assert rows["no_expensive_llvm"]["compile_seconds"] > 0
    assert rows["no_expensive_llvm"]["same_candidates"] is True


@pytest.mark.slow
def test_compile_probe_runs_tiny(tmp_path):
    # The plain-JAX probe, each of amla_jax's differences added in turn, and amla_jax's own
    # step for the same one-cell network, per branch and fused: every row compiles, trains
    # and is counted.
    out = tmp_path / "probe.json"
    printed = _run("experiments/bench/compile_probe.py", "--tiny", "--json", str(out))
    rows = json.loads(out.read_text())["rows"]
    names = ["plain", "+shift", "+matmul1x1", "+taps", "+l2", "+tensor_clip"]
    names += ["amla_jax/branch", "amla_jax"]
    assert [row["row"] for row in rows] == names
    for row in rows:
        assert row["fusions"] > 0 and row["compile_s"] > 0 and row["step_ms"] > 0
        assert math.isfinite(row["loss"])
    assert printed.count("fusions") == len(names)
