"""One run, as a plain function: config in, search outcome and run directory out.

The Hydra entry point (`amla_jax.__main__`) composes the config and calls `run`; a
notebook can build a `RunConfig` by hand and call `run` directly, with no Hydra.

Synopsis::

    from amla_jax.config import RunConfig
    from amla_jax.runner import run
    cfg = RunConfig(run_dir="runs/quick")
    cfg.model.path = "config.run.json"; cfg.algo.name = "fixed"
    outcome = run(cfg)
    outcome.rows[-1]["metrics"]["test/accuracy"]

Errors a user can fix (an unknown algorithm or dataset, a malformed spec, a missing
dataset, a negative budget) are raised as `UserError` subclasses (ValueError) whose
message is one line naming the problem; the entry point prints it and exits with 2.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from amla_jax.algos import get_algorithm, is_oneshot
from amla_jax.amla import save_spec
from amla_jax.config import ModelConfig, RunConfig
from amla_jax.data import load_dataset
from amla_jax.evaluators import get_evaluator
from amla_jax.rundir import EVALUATOR, SPEC_FILE, replacing, write_text
from amla_jax.search import SearchOutcome, run_search
from amla_jax.spec import NetworkSpec
from amla_jax.strict_json import dumps
from amla_jax.train.compile_options import add_default_flag
from amla_jax.train.distributed import is_primary
from amla_jax.validate import check_config, network_of


def validate(cfg: RunConfig) -> None:
    """Checks ``cfg``'s values (`amla_jax.validate.check_config`) and its network file."""
    check_config(cfg)


def template_spec(cfg: RunConfig) -> NetworkSpec:
    """The network named by ``spec=`` / ``model.path`` (a JSON file) or ``model.network``."""
    return network_of(cfg)


def prefer_fast_compiles() -> None:
    """Asks XLA's CPU backend for LLVM optimisation level 1 unless ``$XLA_FLAGS`` names one.

    A search compiles every candidate afresh, and on CPU compiling took longer than
    training at search budgets; level 1 roughly halved compile time with the same step
    time (experiments/bench/README.md). It must run before JAX starts its backend; set
    ``XLA_FLAGS=--xla_backend_optimization_level=2`` (or 3) to keep XLA's default. A
    program compiled with its own level (the initialisation's -O0) keeps it.
    """
    add_default_flag("--xla_backend_optimization_level=1")


def enable_compilation_cache(directory: str | None = None) -> None:
    """Keeps compiled train steps on disk (JAX's persistent cache), so a resumed search, a
    rerun with another seed or a test revisiting a network does not compile it again.
    ``$AMLA_JAX_CACHE`` overrides the directory; an empty value disables the cache."""
    directory = os.environ.get("AMLA_JAX_CACHE", directory or str(Path.home() / ".cache/amla_jax"))
    if not directory:
        return
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def make_evaluate(cfg: RunConfig, run_dir: Path):
    """The evaluator named by ``evaluator.name``; a table lookup (``tabular``) loads no
    dataset and records its source (table and column) in ``<run_dir>/evaluator.json``."""
    factory = get_evaluator(cfg.evaluator.name)
    if cfg.evaluator.name != "tabular":
        return factory(load_dataset(cfg.dataset), cfg.optim, cfg.train, run_dir)
    evaluate = factory(column=cfg.evaluator.column)
    meta = {"evaluator": "tabular", "column": cfg.evaluator.column, "source": evaluate.source}
    if is_primary():
        write_text(run_dir / EVALUATOR, dumps(meta, indent=1) + "\n")
    return evaluate


def run(cfg: RunConfig) -> SearchOutcome:
    """Runs ``cfg.algo`` on ``cfg.dataset`` in ``cfg.run_dir`` (resuming if it can).

    Returns:
      The `SearchOutcome`; the run directory also holds ``spec.json`` (the network the
      search returns, in our format), ``best_spec.json`` (AMLA's format),
      ``candidates.jsonl``, ``metrics.jsonl``, TensorBoard events under ``tb/`` and the
      final train states under ``checkpoints/``.
    """
    check_config(cfg)
    prefer_fast_compiles()  # in time unless JAX's backend already started (a notebook)
    enable_compilation_cache()
    template = template_spec(cfg)
    algorithm = get_algorithm(cfg.algo.name)(cfg.algo, template)
    run_dir = Path(cfg.run_dir)
    if is_oneshot(algorithm):  # one supernet, not candidates (single process)
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_oneshot_algorithm(algorithm, cfg, run_dir)
    if is_primary():  # the others train along and write nothing (train.distributed)
        run_dir.mkdir(parents=True, exist_ok=True)
    evaluate = make_evaluate(cfg, run_dir)
    outcome = run_search(algorithm, evaluate, run_dir, jax.random.key(cfg.seed))
    if is_primary():
        with replacing(run_dir / SPEC_FILE) as tmp:
            save_spec(outcome.best_spec, tmp, amla=False)
    return outcome


def run_oneshot_algorithm(algorithm, cfg: RunConfig, run_dir: Path) -> SearchOutcome:
    """A one-shot search (`amla_jax.algos.oneshot`): one supernet trained on the dataset
    by `amla_jax.oneshot.loop.run_oneshot`, which writes the run directory's answer too
    (``spec.json``, ``best_spec.json``, one candidate row). ``evaluator`` is not used."""
    from amla_jax.oneshot.loop import run_oneshot, steps_per_epoch  # noqa: PLC0415

    dataset = load_dataset(cfg.dataset)
    options = algorithm.options
    supernet = algorithm.make_supernet(dataset.info.num_classes)
    steps = options.epochs * steps_per_epoch(dataset.info.num_train, options.batch_size)
    method = algorithm.make_method(steps)
    key = jax.random.key(cfg.seed)
    return run_oneshot(
        method, supernet, dataset, options, run_dir, key, template=algorithm.template
    )


__all__ = ["ModelConfig", "RunConfig", "run", "template_spec", "validate"]
