"""Per-trial resources of the launcher presets (conf/hydra/launcher/), checked before launch.

The presets ask for ``${amla.cpus:N}`` CPUs per trial: N, or every CPU this process may
use where it has fewer, so a preset never asks a machine for more than it has. Before a
multirun, `check_launcher` refuses a request that a local Ray (or submitit's local
executor) can never meet: Ray would otherwise wait for a node that never comes
("No available node types can fulfill resource request"), forever. A request to a Ray
cluster (``hydra.launcher.ray.init.address`` set) or to SLURM is the cluster's to judge.

Synopsis::

    from amla_jax.launchers import check_launcher, register_resolvers
    register_resolvers()                      # ${amla.cpus:4} -> min(4, usable CPUs)
    check_launcher(cfg.hydra.launcher)        # LauncherError: cannot be met here
"""

from __future__ import annotations

import os
import shutil
import subprocess

from amla_jax.errors import UserError


class LauncherError(UserError):
    """A launcher asks for resources this machine does not have; the message names the key."""


def machine_cpus() -> int:
    """The CPUs this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_gpus() -> int:
    """NVIDIA GPUs visible here (``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``); 0 if none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def cpus_per_trial(requested: int | str = 4) -> int:
    """``requested`` CPUs, or all usable ones where there are fewer (at least 1)."""
    return max(1, min(int(requested), machine_cpus()))


def register_resolvers() -> None:
    """Registers ``${amla.cpus:N}`` with OmegaConf (the entry point and compose do it)."""
    from omegaconf import OmegaConf  # noqa: PLC0415

    OmegaConf.register_new_resolver("amla.cpus", cpus_per_trial, replace=True)


def check_launcher(launcher) -> None:
    """Fails at once where a local launcher asks for more than this machine has.

    Args:
      launcher: the composed ``hydra.launcher`` node (any launcher; others pass).

    Raises:
      LauncherError: naming the key, what the machine has, and the fix.
    """
    target = str(launcher.get("_target_", ""))
    if target.endswith("RayLauncher"):
        ray = launcher.get("ray", {})
        if ray.get("init", {}).get("address"):
            return
        remote = ray.get("remote", {})
        _check("hydra.launcher.ray.remote.num_cpus", remote.get("num_cpus"), machine_cpus(),
               "CPUs", "or join a cluster: hydra.launcher.ray.init.address=auto")  # fmt: skip
        _check("hydra.launcher.ray.remote.num_gpus", remote.get("num_gpus"), machine_gpus(),
               "GPUs", "or join a cluster: hydra.launcher.ray.init.address=auto")  # fmt: skip
    elif target.endswith("submitit_launcher.LocalLauncher"):
        _check("hydra.launcher.cpus_per_task", launcher.get("cpus_per_task"), machine_cpus(),
               "CPUs", "or run on SLURM: hydra/launcher=slurm")  # fmt: skip
        _check("hydra.launcher.gpus_per_node", launcher.get("gpus_per_node"), machine_gpus(),
               "GPUs", "or run on SLURM: hydra/launcher=slurm")  # fmt: skip


def _check(key: str, requested, available: int, what: str, alternative: str) -> None:
    if requested is not None and float(requested) > available:
        raise LauncherError(
            f"{key}={requested}: this machine has {available} {what}; ask for at most "
            f"{available} per trial ({key}={available}), {alternative}"
        )
