"""Orbax checkpoints of a train state (the search keeps each candidate's final one).

Synopsis::

    from amla_jax.train import save_train_state
    save_train_state(result.state, "runs/x/checkpoints/candidate_0")
"""

from __future__ import annotations

from pathlib import Path

import jax

from amla_jax.train.distributed import checkpoint_processes
from amla_jax.train.state import TrainState


def save_train_state(state: TrainState, path: str | Path) -> None:
    """An Orbax checkpoint of the train state's arrays (params, statistics, optimiser)."""
    import orbax.checkpoint as ocp  # noqa: PLC0415 (slow import, needed only here)

    tree = {
        "step": state.step,
        "params": state.params,
        "batch_stats": state.batch_stats,
        "nac_stats": state.nac_stats,
        "ema_params": state.ema_params,
        "opt_state": state.opt_state,
    }
    with ocp.StandardCheckpointer(multiprocessing_options=checkpoint_processes()) as checkpointer:
        checkpointer.save(Path(path).absolute(), jax.device_get(tree), force=True)
