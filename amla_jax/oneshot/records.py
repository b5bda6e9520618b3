"""What a one-shot search leaves on disk: its Orbax checkpoints, the epoch rows and, at
the end, the answer in the discrete searches' format.

`amla_jax.oneshot.loop` calls these; the file names are `amla_jax.rundir`'s. The
checkpoint (step = completed epochs) holds the method's whole state (supernet weights,
architecture parameters, optimiser states, controller) plus a small JSON of what wrote
it; the data position is the epoch itself (every epoch's order is drawn from the search
key and the epoch number alone).

Synopsis::

    with checkpoint_manager(run_dir / SEARCH_DIR) as manager:
        state, epoch = restore_state(manager, method.name, fresh_state)
        save_state(manager, epoch + 1, method.name, state)
    check_replayed(path, old_row, new_row)        # a row beyond the checkpoint
    outcome = write_answer(run_dir, method.name, space, arch, template, info, rows)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from amla_jax import faults
from amla_jax.amla import save_spec
from amla_jax.rundir import (
    BEST_SPEC,
    CANDIDATES,
    SPEC_FILE,
    RunDirError,
    append_row,
    read_candidates,
    replacing,
)
from amla_jax.search_state import checkpoint_manager, quiet_absl  # noqa: F401 (re-exported)

# Fields of an epoch row that depend on the machine's speed, not on the search.
TIMINGS = ("compile_seconds", "step_seconds", "epoch_seconds")
# A replayed epoch must give the row's numbers up to float noise (same program, same CPU).
REPLAY_RTOL = 1e-5


def save_state(manager, epochs: int, method: str, state) -> None:
    """Checkpoints ``state`` as step ``epochs`` (completed epochs); Orbax renames the
    finished write into place, so a crash leaves the previous step intact."""
    import jax  # noqa: PLC0415
    import orbax.checkpoint as ocp  # noqa: PLC0415 (slow import)

    args = ocp.args.Composite(
        state=ocp.args.StandardSave(jax.device_get(state)),
        meta=ocp.args.JsonSave({"method": method, "epochs": epochs}),
    )
    armed = faults.watch_for_temporary("checkpoint", Path(manager.directory))
    manager.save(epochs, args=args, force=True)
    manager.wait_until_finished()
    if armed:  # the write was quicker than the test hook's watcher
        faults.kill()


def restore_state(manager, method: str, like):
    """``(state, completed epochs)`` of the latest checkpoint, typed as ``like`` (a fresh
    ``init``); ``(like, 0)`` when there is none.

    Raises:
      RunDirError: the checkpoint was written by another method.
    """
    import orbax.checkpoint as ocp  # noqa: PLC0415

    step = manager.latest_step()
    if step is None:
        return like, 0
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if meta.get("method") != method:
        raise RunDirError(
            f"run_dir: holds a {meta.get('method')!r} search, not {method!r}; "
            "use a new run directory"
        )
    restore = ocp.args.Composite(state=ocp.args.StandardRestore(like))
    return manager.restore(step, args=restore)["state"], int(meta["epochs"])


def _numbers(row: dict, prefix: str = "") -> dict[str, float]:
    """The row's numbers, flattened (timings left out)."""
    out = {}
    for key, value in row.items():
        if key in TIMINGS:
            continue
        if isinstance(value, dict):
            out.update(_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            flat = np.asarray(value, dtype=float).ravel() if value else np.zeros(0)
            out.update({f"{prefix}{key}[{i}]": float(v) for i, v in enumerate(flat)})
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def check_replayed(path: Path, old: dict, new: dict) -> None:
    """Raises `RunDirError` unless ``new`` (an epoch recomputed from the checkpoint)
    reproduces ``old`` (its row, written before a crash): same arch, same numbers."""
    a, b = _numbers(old), _numbers(new)
    same = old.get("arch") == new.get("arch") and set(a) == set(b)
    same = same and all(math.isclose(a[k], b[k], rel_tol=REPLAY_RTOL, abs_tol=1e-7) for k in a)
    if not same:
        raise RunDirError(
            f"{path}: epoch {old.get('epoch')}'s row differs from the same epoch rerun from "
            "the checkpoint (another config or seed?); use a new run directory"
        )


def candidate_row(name: str, spec, rows: list[dict], num_params: int) -> dict:
    """The one ``candidates.jsonl`` row of a one-shot search: its derived network, scored
    by the supernet (``source``), with the last epoch's metrics."""
    last = rows[-1]
    return {
        "id": 0,
        "algorithm": name,
        "spec": spec.to_json(),
        "metrics": dict(last["metrics"]),
        "num_params": int(num_params),
        "flops": None,
        "steps": int(sum(r["steps"] for r in rows)),
        "train_seconds": float(sum(r["epoch_seconds"] for r in rows)),
        "compile_seconds": float(sum(r["compile_seconds"] for r in rows)),
        "source": f"oneshot:{name}:supernet",
    }


def write_answer(run_dir: Path, name: str, spec, rows: list[dict], num_params) -> dict:
    """Writes ``spec.json`` and ``best_spec.json`` and, once, the candidate row; returns
    the row (the recorded one if it exists)."""
    with replacing(run_dir / SPEC_FILE) as tmp:
        save_spec(spec, tmp, amla=False)
    with replacing(run_dir / BEST_SPEC) as tmp:
        save_spec(spec, tmp, amla=True)
    recorded = read_candidates(run_dir / CANDIDATES)
    if recorded:
        return recorded[0]
    row = candidate_row(name, spec, rows, num_params())
    append_row(run_dir / CANDIDATES, row)
    return row
