"""``python -m amla_jax [OVERRIDES...]``: the Hydra entry point.

Hydra composes ``conf/`` (``algo``, ``dataset``, ``model``, ``optim``, ``experiment``,
``debug``), the composed config is locked and converted to the `RunConfig` dataclasses,
and `amla_jax.runner.run` does the work. Hydra lives only here.

Examples::

    python -m amla_jax                                   # short NAC on digits, offline
    python -m amla_jax algo=nac dataset=cifar10
    python -m amla_jax algo=fixed spec=config.run.json   # AMLA's JSON (or ours)
    python -m amla_jax -m algo=nac,nac_worst,random seed=0,1,2

Started as one process of several (``AMLA_JAX_COORDINATOR``/``AMLA_JAX_NUM_PROCESSES``/
``AMLA_JAX_PROCESS_ID``, or a SLURM step of several tasks: `amla_jax.train.distributed`),
it initialises ``jax.distributed`` first; every process then trains each candidate
data-parallel over all processes' devices, and only process 0 writes the run directory
(the others' Hydra output goes to a temporary folder removed at exit).

A mistake a user can fix ends with one line on stderr, ``error: <what and how to fix>``,
and exit code 2, never a traceback; a search stopped by SIGTERM/SIGINT exits with
128 + the signal number after checkpointing.
"""

from __future__ import annotations

import os
import sys

from amla_jax.compose import CONF_DIR, compose_config
from amla_jax.errors import USAGE_EXIT, UserError, one_line


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_EXIT)


def _overrides(argv: list[str]) -> list[str] | None:
    """The plain overrides of a single run, or None for a multirun or Hydra's own flags."""
    if any(a in ("-m", "--multirun") or a.startswith("-") for a in argv):
        return None
    return argv


def precheck(argv: list[str]) -> None:
    """Composes and validates the config before Hydra runs (and creates the run
    directory), so that a bad override, value or network fails in one line, exit 2; so
    does a multirun whose launcher asks for more than this machine has."""
    overrides = _overrides(argv)
    try:
        if overrides is not None:
            _validate(overrides)
        elif "-m" in argv or "--multirun" in argv:
            _check_launcher(argv)
    except UserError as exc:
        _fail(one_line(exc))


def _check_launcher(argv: list[str]) -> None:
    """`amla_jax.launchers.check_launcher` on the launcher the overrides select (sweeps
    of other keys cannot be composed, and do not change the launcher)."""
    from amla_jax.launchers import check_launcher  # noqa: PLC0415

    launcher = [
        a for a in argv if a.lstrip("+~").startswith(("hydra/launcher=", "hydra.launcher."))
    ]
    if launcher:
        check_launcher(compose_config(launcher, hydra=True).hydra.launcher)


def _validate(overrides: list[str]) -> None:
    """The run's config and network, fully checked (`amla_jax.validate`)."""
    from amla_jax.validate import check_run_dir, network_of, run_config  # noqa: PLC0415

    run_dir = _run_dir(overrides)
    check_run_dir(run_dir)
    network_of(run_config(compose_config(overrides), run_dir=run_dir or "."))


def _run_dir(overrides: list[str]) -> str | None:
    """The value of a ``hydra.run.dir=`` override, or None."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") == "hydra.run.dir":
            return value.strip("'\"")
    return None


def _task(cfg) -> None:
    import logging  # noqa: PLC0415

    from hydra.core.hydra_config import HydraConfig  # noqa: PLC0415
    from omegaconf import OmegaConf  # noqa: PLC0415

    from amla_jax.runner import run  # noqa: PLC0415
    from amla_jax.search import SearchInterrupted  # noqa: PLC0415

    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO
    logging.getLogger("jax").setLevel(logging.WARNING)  # "Unable to initialize backend 'tpu'"
    from amla_jax.validate import run_config  # noqa: PLC0415

    OmegaConf.set_readonly(cfg, True)
    try:
        run(run_config(cfg, run_dir=HydraConfig.get().runtime.output_dir))
    except UserError as exc:
        _fail(one_line(exc))
    except SearchInterrupted as exc:
        print(f"stopped: {exc}; rerun the same command to resume", file=sys.stderr)
        sys.exit(exc.exit_code)


# The variables `amla_jax.train.distributed.distributed_settings` reads (importing it
# imports JAX).
_ASKS_FOR_PROCESSES = (
    "AMLA_JAX_COORDINATOR",
    "AMLA_JAX_NUM_PROCESSES",
    "AMLA_JAX_PROCESS_ID",
    "SLURM_STEP_NUM_TASKS",
    "SLURM_NTASKS",
)


def join_processes(argv: list[str]) -> list[str]:
    """Initialises `jax.distributed` where the environment asks for several processes;
    returns the overrides this process runs with (the others' Hydra output redirected)."""
    if not any(os.environ.get(name) for name in _ASKS_FOR_PROCESSES):
        return argv  # one process; and JAX stays unimported, so mistakes fail fast
    from amla_jax.train.distributed import initialize_from_environment, is_primary  # noqa: PLC0415

    try:
        if not initialize_from_environment():
            return argv
    except UserError as exc:
        _fail(one_line(exc))
    if _overrides(argv) is None:
        _fail("a multirun (-m) or Hydra flag cannot be one training over several processes")
    if is_primary():
        return argv
    import atexit  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    scratch = tempfile.mkdtemp(prefix="amla_jax_not_primary_")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    kept = [a for a in argv if a.split("=", 1)[0].lstrip("+") != "hydra.run.dir"]
    quiet = [
        "hydra.output_subdir=null",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]
    return [*kept, f"hydra.run.dir={scratch}", *quiet]


def main() -> None:
    """Runs the Hydra app on ``sys.argv``."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    from amla_jax.runner import prefer_fast_compiles  # noqa: PLC0415

    prefer_fast_compiles()  # before anything starts JAX's backend
    argv = join_processes(sys.argv[1:])  # before any JAX work, too
    sys.argv[1:] = argv  # what Hydra parses
    from amla_jax.config import register_configs  # noqa: PLC0415

    register_configs()
    precheck(argv)
    import hydra  # noqa: PLC0415

    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_task)()


if __name__ == "__main__":
    main()
