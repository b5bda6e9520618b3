"""The trial-parallel launcher presets (conf/hydra/launcher/): they compose, and the
joblib one runs a real multirun whose trials each leave a complete run directory."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, TINY_NETWORK
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from amla_jax.config import register_configs
from amla_jax.launchers import LauncherError, check_launcher, machine_cpus
from amla_jax.report import collect, compare

LAUNCHERS = ROOT / "conf" / "hydra" / "launcher"
# The plugin config each preset extends → (the plugin's module, its launcher class).
PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "JoblibLauncher"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "SlurmLauncher"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "LocalLauncher"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "RayLauncher"),
}


def presets() -> list[str]:
    return sorted(p.stem for p in LAUNCHERS.glob("*.yaml"))


def base_of(preset: str) -> str:
    """The plugin config named first in the preset's defaults list."""
    defaults = yaml.safe_load((LAUNCHERS / f"{preset}.yaml").read_text())["defaults"]
    return next(d for d in defaults if d != "_self_")


def hydra_config(*overrides: str):
    register_configs()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_every_preset_extends_a_known_plugin():
    assert {"local_parallel", "slurm", "slurm_local", "ray_local"} <= set(presets())
    for preset in presets():
        assert base_of(preset) in PLUGINS, f"{preset}.yaml: add its plugin to PLUGINS"
        assert preset not in PLUGINS, f"{preset}.yaml would shadow the plugin's own config"


@pytest.mark.parametrize("preset", presets())
def test_preset_composes_onto_its_plugin(preset):
    module, launcher = PLUGINS[base_of(preset)]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    cfg = hydra_config(f"hydra/launcher={preset}", "run_dir=.")
    assert cfg.hydra.launcher._target_.endswith(f".{launcher}")


def test_slurm_partition_comes_from_the_environment(monkeypatch):
    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        pytest.skip("hydra-submitit-launcher is not installed")
    monkeypatch.setenv("AMLA_SLURM_PARTITION", "gpu")
    launcher = hydra_config("hydra/launcher=slurm", "run_dir=.").hydra.launcher
    assert launcher.partition == "gpu" and launcher.account is None
    monkeypatch.delenv("AMLA_SLURM_PARTITION")
    launcher = hydra_config("hydra/launcher=slurm", "run_dir=.").hydra.launcher
    assert launcher.partition is None and launcher.timeout_min > 0


@pytest.mark.slow
def test_joblib_multirun_leaves_complete_run_directories(tmp_path):
    # Two trials of a tiny fixed network side by side (seeds 0, 1); the compiled program
    # is shared through the suite's persistent cache ($AMLA_JAX_CACHE, conftest.py).
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_NETWORK))
    sweep = tmp_path / "multirun"
    command = [
        sys.executable,
        "-m",
        "amla_jax",
        "-m",
        "hydra/launcher=local_parallel",
        "algo=fixed",
        "spec=tiny.json",  # relative to the working directory (no "/" in the run dir name)
        "seed=0,1",
        "debug=smoke",
        "algo.iterations=1",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    run_dirs = sorted(p.parent for p in sweep.rglob("candidates.jsonl"))
    assert [d.name for d in run_dirs] == ["seed=0", "seed=1"]
    for seed, run_dir in enumerate(run_dirs):
        for name in ("best_spec.json", "spec.json", "metrics.jsonl", ".hydra/config.yaml"):
            assert (run_dir / name).exists(), run_dir / name
        assert OmegaConf.load(run_dir / ".hydra" / "config.yaml").seed == seed
        rows = (run_dir / "candidates.jsonl").read_text().splitlines()
        assert len(rows) == 1 and "test/accuracy" in json.loads(rows[0])["metrics"]
    group = compare(collect([sweep])).groups
    assert len(group) == 1 and group[0].algorithm == "fixed" and group[0].seeds == [0, 1]


def test_a_local_request_beyond_the_machine_is_refused_naming_the_key():
    ray = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    too_many = {"_target_": ray, "ray": {"init": {"address": None},
                "remote": {"num_cpus": machine_cpus() + 1, "num_gpus": 0}}}  # fmt: skip
    with pytest.raises(LauncherError, match=r"hydra.launcher.ray.remote.num_cpus=\d+: this"):
        check_launcher(too_many)
    check_launcher({**too_many, "ray": {**too_many["ray"], "init": {"address": "auto"}}})
    local = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    with pytest.raises(LauncherError, match="hydra.launcher.cpus_per_task"):
        check_launcher({"_target_": local, "cpus_per_task": machine_cpus() + 1})
    check_launcher({"_target_": local, "cpus_per_task": 1, "gpus_per_node": 0})


@pytest.mark.parametrize("preset", ["ray_local", "slurm_local"])
def test_presets_ask_for_at_most_the_machine_cpus(preset):
    module, _ = PLUGINS[base_of(preset)]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    launcher = hydra_config(f"hydra/launcher={preset}", "run_dir=.").hydra.launcher
    cpus = launcher.ray.remote.num_cpus if preset == "ray_local" else launcher.cpus_per_task
    assert 1 <= cpus <= machine_cpus()
    check_launcher(launcher)


def test_an_unmeetable_ray_multirun_fails_at_once_in_one_line(tmp_path):
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None:
        pytest.skip("hydra-ray-launcher is not installed")
    command = [sys.executable, "-m", "amla_jax", "-m", "hydra/launcher=ray_local",
               f"hydra.launcher.ray.remote.num_cpus={machine_cpus() + 1}", "seed=0,1"]  # fmt: skip
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: hydra.launcher.ray.remote.num_cpus=")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["ray_local", "slurm_local"])
def test_ray_and_submitit_multiruns_leave_runs_amla_report_reads(preset, tmp_path):
    module, _ = PLUGINS[base_of(preset)]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_NETWORK))
    sweep = tmp_path / "multirun"
    command = [sys.executable, "-m", "amla_jax", "-m", f"hydra/launcher={preset}",
               "algo=fixed", f"spec={tmp_path / 'tiny.json'}", "seed=0,1", "debug=smoke",
               "algo.iterations=1", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = sorted(p.parent for p in sweep.rglob("candidates.jsonl"))
    assert len(run_dirs) == 2, proc.stdout[-2000:]
    group = compare(collect([sweep])).groups
    assert len(group) == 1 and group[0].seeds == [0, 1]
    report = subprocess.run([sys.executable, "-m", "amla_jax.report", str(sweep), "--no-plots"],
                            env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    assert "fixed" in report.stdout


def _table_multirun(cwd, sweep, fault: str | None) -> subprocess.CompletedProcess:
    """Two table-driven trials (seeds 0, 1) of 4 candidates in joblib workers."""
    command = [sys.executable, "-m", "amla_jax", "-m", "hydra/launcher=local_parallel",
               "algo=random_space", "search_space=nb201", "evaluator=tabular",
               "algo.iterations=4", "seed=0,1", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AMLA_JAX_FAULT", None)
    if fault:
        env["AMLA_JAX_FAULT"] = fault
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _rows(sweep) -> dict[str, list]:
    out = {}
    for path in sorted(sweep.rglob("candidates.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        out[path.parent.name] = [(r["spec"], r["metrics"]) for r in rows]
    return out


@pytest.mark.slow
def test_a_killed_trial_resumes_when_the_multirun_is_rerun(tmp_path):
    if importlib.util.find_spec("analognasbench") is None:
        pytest.skip("the tabular extra is not installed")
    reference = tmp_path / "reference"
    assert _table_multirun(tmp_path, reference, None).returncode == 0
    # A worker is SIGKILLed after its 2nd row (before that row's checkpoint): joblib
    # stops the multirun (the other trial may be cut short too); rerunning the same
    # command keeps every recorded row and finishes each trial.
    sweep = tmp_path / "killed"
    killed = _table_multirun(tmp_path, sweep, "row:2")
    assert killed.returncode != 0
    counts = {k: len(v) for k, v in _rows(sweep).items()}
    assert 2 in counts.values() and max(counts.values()) < 4, counts
    rerun = _table_multirun(tmp_path, sweep, None)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming" in rerun.stdout + rerun.stderr
    assert _rows(sweep) == _rows(reference) and len(_rows(sweep)["seed=1"]) == 4
