"""Shared fixtures: a tiny macro network, AMLA-format configs, a compilation cache.

The AMLA-format files are the repository's own: hand-written task configs in
``tests/fixtures/amla/`` (construction, a small train-mode run, a micro DAG network) and
the networks ``examples/amla/export.py`` writes from ``conf/model/`` (the README trains them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AMLA_FIXTURES = ROOT / "tests" / "fixtures" / "amla"
AMLA_EXAMPLES = ROOT / "examples" / "amla"
# Compiled train steps are cached on disk across tests and subprocesses (JAX's persistent
# cache), so a network compiled once is not compiled again in the same CI run.
os.environ.setdefault("AMLA_JAX_CACHE", str(ROOT / ".pytest_cache" / "xla"))


def pytest_configure(config):
    from amla_jax.runner import enable_compilation_cache

    enable_compilation_cache()


TINY_NETWORK = {
    "format": "amla_jax.spec/1",
    "name": "tiny",
    "stem": [[{"block": "conv2d", "kernel_size": [1, 1], "outputs": 16}], [{"block": "lrn"}]],
    "arch": {
        "type": "macro",
        "network": [
            {"filters": {"Branch1": "1x1", "Branch3": "3x3sep"}, "outputs": 16, "inputs": []},
            {"widener": {}},
            {"filters": {"Branch2": "3x3", "Branch5": "5x5sep"}, "outputs": 32, "inputs": [1]},
        ],
    },
    "head": [
        {"block": "reduce_mean"},
        {"block": "dropout", "keep_prob": 0.8},
        {"block": "fc-final", "outputs": 10},
    ],
}


def amla_config_paths() -> list[Path]:
    """Every AMLA-format JSON file in the repository (fixtures and exported examples)."""
    paths = sorted([*AMLA_FIXTURES.glob("*.json"), *AMLA_EXAMPLES.glob("*.json")])
    # An empty list would silently skip every test parametrized over it.
    assert paths, f"no AMLA JSON under {AMLA_FIXTURES} or {AMLA_EXAMPLES}"
    return paths


@pytest.fixture
def tiny_spec():
    from amla_jax.spec import NetworkSpec

    return NetworkSpec.from_json(TINY_NETWORK)


@pytest.fixture
def tiny_spec_file(tmp_path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_NETWORK))
    return path


def launch_through_kills(command, cwd, env, moments) -> tuple[list[str], list[float]]:
    """Runs ``command`` once per fault moment (``$AMLA_JAX_FAULT``: SIGKILLed there) and
    then once clean, asserting each exit; returns every launch's stdout and start time."""
    logs, starts = [], []
    for moment in [*moments, None]:
        fault = {} if moment is None else {"AMLA_JAX_FAULT": moment}
        starts.append(time.time())
        launch = subprocess.run(
            command, cwd=cwd, env={**env, **fault}, timeout=1200, capture_output=True, text=True
        )
        logs.append(launch.stdout)
        expected = 0 if moment is None else -signal.SIGKILL
        assert launch.returncode == expected, (moment, launch.stdout, launch.stderr[-3000:])
    return logs, starts
