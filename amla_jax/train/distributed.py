"""One training over several processes: `jax.distributed` set up from the environment.

A network trains data-parallel over every process's devices: the data mesh spans
`jax.devices()` (all processes), every process draws the same global batch (same data
seed) and places its own rows on its own devices, and the state is replicated. The
losses are those of one process over the same global batch. Only process 0 writes
(`is_primary`).

Settings, read once before JAX computes anything (``python -m amla_jax`` does it):

    AMLA_JAX_COORDINATOR=host:port   process 0's address, reachable by every process
    AMLA_JAX_NUM_PROCESSES=N         how many processes train together
    AMLA_JAX_PROCESS_ID=i            this process, 0..N-1

or, without them, a SLURM step of more than one task (``srun --ntasks=N``: JAX reads
SLURM's variables itself, and the coordinator is the step's first node). Neither: one
process, nothing initialised.

Synopsis::

    from amla_jax.train.distributed import initialize_from_environment, is_primary
    initialize_from_environment()     # True where jax.distributed was initialised
    if is_primary():
        ...                           # write the run directory
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from amla_jax.errors import UserError

COORDINATOR = "AMLA_JAX_COORDINATOR"
NUM_PROCESSES = "AMLA_JAX_NUM_PROCESSES"
PROCESS_ID = "AMLA_JAX_PROCESS_ID"


class DistributedError(UserError):
    """The multi-process settings are incomplete or invalid; the message names them."""


def distributed_settings(environ: Mapping[str, str] = os.environ) -> dict | None:
    """The `jax.distributed.initialize` arguments the environment asks for, or None.

    Returns:
      ``{"coordinator_address", "num_processes", "process_id"}`` from the ``AMLA_JAX_*``
      variables; ``{}`` for a SLURM step of several tasks (JAX detects the rest); None
      for a single process.

    Raises:
      DistributedError: some ``AMLA_JAX_*`` variables are set but not all, or not valid.
    """
    names = (COORDINATOR, NUM_PROCESSES, PROCESS_ID)
    given = [name for name in names if environ.get(name)]
    if given:
        if len(given) < len(names):
            missing = ", ".join(name for name in names if name not in given)
            raise DistributedError(f"{', '.join(given)} set without {missing}: set all three")
        try:
            num, pid = int(environ[NUM_PROCESSES]), int(environ[PROCESS_ID])
        except ValueError:
            raise DistributedError(f"{NUM_PROCESSES} and {PROCESS_ID} must be integers") from None
        if not 0 <= pid < num:
            raise DistributedError(f"{PROCESS_ID}={pid}: must be in 0..{NUM_PROCESSES}-1")
        return {"coordinator_address": environ[COORDINATOR], "num_processes": num,
                "process_id": pid}  # fmt: skip
    # Every SLURM job sets SLURM_JOB_ID (a submitit trial too): only a step that runs
    # several tasks of one program is a multi-process training.
    if int(environ.get("SLURM_STEP_NUM_TASKS", environ.get("SLURM_NTASKS", "1")) or 1) > 1:
        return {}
    return None


def initialize_from_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """Initialises `jax.distributed` where the environment asks for several processes.

    Returns:
      True where it was initialised (now or before), False for a single process.
    """
    import jax  # noqa: PLC0415 (reading the settings needs no JAX)

    settings = distributed_settings(environ)
    if settings is None:
        return False
    if jax.distributed.is_initialized():
        return True
    jax.distributed.initialize(**settings)
    return True


def is_primary() -> bool:
    """Whether this process writes the run directory (process 0)."""
    import jax  # noqa: PLC0415

    return jax.process_index() == 0
