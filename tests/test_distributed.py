"""One training over two processes (jax.distributed, gloo on 127.0.0.1) gives the losses
of one process with two devices over the same global batches."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import ROOT

from amla_jax import rundir
from amla_jax.train.distributed import DistributedError, distributed_settings

WORKER = ROOT / "tests" / "distributed_worker.py"


def test_settings_come_from_amla_variables_or_a_multi_task_slurm_step():
    assert distributed_settings({}) is None
    assert distributed_settings({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1"}) is None
    assert distributed_settings({"SLURM_JOB_ID": "1", "SLURM_STEP_NUM_TASKS": "4"}) == {}
    env = {"AMLA_JAX_COORDINATOR": "h:1", "AMLA_JAX_NUM_PROCESSES": "2", "AMLA_JAX_PROCESS_ID": "1"}
    assert distributed_settings(env) == {
        "coordinator_address": "h:1", "num_processes": 2, "process_id": 1}  # fmt: skip
    with pytest.raises(DistributedError, match="AMLA_JAX_PROCESS_ID"):
        distributed_settings({"AMLA_JAX_COORDINATOR": "h:1", "AMLA_JAX_NUM_PROCESSES": "2"})
    with pytest.raises(DistributedError, match="0..AMLA_JAX_NUM_PROCESSES-1"):
        distributed_settings({**env, "AMLA_JAX_PROCESS_ID": "2"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMLA_JAX_", "SLURM_"))}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT / "tests"), **extra)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _losses(run_dir) -> list[float]:
    records = rundir.read_metrics(run_dir)
    return [r["train/loss"] for r in records if "train/loss" in r]


@pytest.mark.slow
def test_two_processes_train_one_network_with_one_process_losses(tmp_path):
    reference = tmp_path / "one"
    one = subprocess.run([sys.executable, str(WORKER), str(reference)], env=_env(2),
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    address = f"127.0.0.1:{_free_port()}"
    procs = []
    for pid in range(2):
        env = _env(1, AMLA_JAX_COORDINATOR=address, AMLA_JAX_NUM_PROCESSES="2",
                   AMLA_JAX_PROCESS_ID=str(pid))  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(tmp_path / f"p{pid}")],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))  # fmt: skip
    two = json.loads(_finish(procs, timeout=600)[0].strip().splitlines()[-1])
    assert (two["processes"], two["devices"]) == (2, 2)
    assert not (tmp_path / "p1").exists()  # only process 0 writes
    assert len(_losses(reference)) == 3
    assert _losses(tmp_path / "p0") == pytest.approx(_losses(reference), rel=1e-5)
    expected = json.loads(one.stdout.strip().splitlines()[-1])["metrics"]
    assert two["metrics"] == pytest.approx(expected, rel=1e-4, abs=1e-5)


def _cli(run_dir, spec, env) -> subprocess.Popen:
    args = [
        "algo=fixed",
        f"spec={spec}",
        "train.steps=3",
        "train.batch_size=16",
        "train.eval_batch_size=64",
        "train.log_every=1",
        "train.progress=false",
        "train.bn_calibration_batches=2",
        f"hydra.run.dir={run_dir}",
    ]
    return subprocess.Popen([sys.executable, "-m", "amla_jax", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _finish(procs, timeout: float = 900) -> list[str]:
    """The processes' stdouts, once each has exited with 0 (killed after ``timeout``)."""
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    return [out for out, _ in outs]


@pytest.mark.slow
def test_the_cli_as_two_processes_writes_one_run_dir_with_one_process_results(tmp_path):
    """`python -m amla_jax` started twice with AMLA_JAX_* set trains one network over both
    processes: one run directory, written by process 0 alone, holding what one process
    with two devices writes over the same global batches."""
    from conftest import TINY_NETWORK  # noqa: PLC0415

    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY_NETWORK))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    _finish([_cli(tmp_path / "one", spec, _env(2, TMPDIR=str(scratch)))])

    def two_processes() -> list[str]:  # the CLI as 2 processes of one device, in "two"
        address = f"127.0.0.1:{_free_port()}"
        return _finish([
            _cli(tmp_path / "two", spec, _env(1, TMPDIR=str(scratch), AMLA_JAX_COORDINATOR=address,
                                              AMLA_JAX_NUM_PROCESSES="2", AMLA_JAX_PROCESS_ID=str(pid)))
            for pid in range(2)
        ])  # fmt: skip

    outs = two_processes()
    assert "candidate 0:" in outs[0] and "candidate" not in outs[1]  # 1 prints no table
    assert list(scratch.iterdir()) == []  # process 1's Hydra scratch folder is gone
    (one,) = rundir.read_candidates(tmp_path / "one" / rundir.CANDIDATES)
    (two,) = rundir.read_candidates(tmp_path / "two" / rundir.CANDIDATES)
    assert two["metrics"] == pytest.approx(one["metrics"], rel=1e-4, abs=1e-5)
    assert len(_losses(tmp_path / "two")) == 3  # written once, not once per process
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-5)
    written = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert written == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert (tmp_path / "two" / "checkpoints" / "candidate_0").is_dir()
    # Rerun: process 0 resumes from the run directory, process 1 from the rows it sends.
    assert "already finished" in two_processes()[0]
    assert len(rundir.read_candidates(tmp_path / "two" / rundir.CANDIDATES)) == 1
