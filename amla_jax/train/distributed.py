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
    rows = broadcast_json(rows)       # process 0's value, on every process
"""

from __future__ import annotations

import json
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


def broadcast_json(value):
    """Process 0's ``value`` (anything JSON can hold), returned on every process.

    With one process it is ``value`` itself; otherwise every process must call it (a
    collective), and the other processes' ``value`` is ignored.
    """
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from jax.experimental import multihost_utils  # noqa: PLC0415

    if jax.process_count() == 1:
        return value
    data = np.frombuffer(json.dumps(value).encode(), np.uint8) if is_primary() else None
    size = int(multihost_utils.broadcast_one_to_all(np.int32(0 if data is None else data.size)))
    buffer = np.zeros(size, np.uint8) if data is None else data
    return json.loads(bytes(np.asarray(multihost_utils.broadcast_one_to_all(buffer))))


def checkpoint_processes():
    """Orbax's multiprocessing options for checkpoints that process 0 alone writes.

    Orbax expects every process to take part in a save (it waits at barriers): with
    several processes, only process 0 is declared active, so it saves alone.
    """
    import jax  # noqa: PLC0415
    import orbax.checkpoint as ocp  # noqa: PLC0415

    if jax.process_count() == 1:
        return ocp.options.MultiprocessingOptions()
    return ocp.options.MultiprocessingOptions(primary_host=0, active_processes={0})
