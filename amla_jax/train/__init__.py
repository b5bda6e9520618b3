"""Training and evaluation of one network: a pure, jitted, data-parallel train step.

Modules, one concern each: `state` (TrainState, create_train_state), `step` (the loss,
`make_train_step`, the data mesh), `evaluate` (the eval step and split metrics),
`calibrate` (BatchNorm recalibration), `nac_stats` (NAC's utilities and skip scalars
under AMLA's names), `checkpoint` (Orbax), `distributed` (one training over several
processes), `programs` (compiled programs reused per spec and recipe), `loop`
(`train_and_evaluate`, `TrainResult`).

Synopsis::

    from amla_jax.train import train_and_evaluate
    result = train_and_evaluate(spec, dataset, cfg.optim, cfg.train, key, run_dir="runs/x")
    result.metrics["test/accuracy"], result.utilities["Cell1/Branch2"], result.scalars

    # one step by hand
    from amla_jax.train import create_train_state, make_train_step
    train_step = make_train_step(optim, num_classes, steps_per_epoch, total_steps)
    state, metrics = train_step(create_train_state(model, key, image_shape, tx), batch, key)
"""

from amla_jax.train.calibrate import make_calibration_step, recalibrate_batch_norm
from amla_jax.train.checkpoint import save_train_state
from amla_jax.train.evaluate import evaluate, make_eval_step
from amla_jax.train.loop import BatchSizeError, TrainResult, train_and_evaluate
from amla_jax.train.nac_stats import read_scalars, read_utilities
from amla_jax.train.programs import PROGRAMS, Program, ProgramCache, program_key
from amla_jax.train.state import TrainState, create_train_state
from amla_jax.train.step import data_mesh, make_train_step, replicate, shard_batch

__all__ = [
    "PROGRAMS",
    "BatchSizeError",
    "Program",
    "ProgramCache",
    "TrainResult",
    "TrainState",
    "create_train_state",
    "data_mesh",
    "evaluate",
    "make_calibration_step",
    "make_eval_step",
    "make_train_step",
    "program_key",
    "read_scalars",
    "read_utilities",
    "recalibrate_batch_norm",
    "replicate",
    "save_train_state",
    "shard_batch",
    "train_and_evaluate",
]
