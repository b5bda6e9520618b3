"""The trained network to export: spec, shapes and eval-mode variables, read from a run.

A run directory holds each candidate's final train state (``checkpoints/candidate_<i>``,
saved after BatchNorm recalibration), its spec (the ``candidates.jsonl`` row) and the
composed config (``.hydra/config.yaml``: the dataset's shape, whether an EMA was kept).
`load_network` puts them together as an `InferenceNetwork` whose `forward` is what
``amla_jax`` evaluates: ``train=False`` with the evaluated weights (the EMA weights where
the recipe keeps an EMA) and the recalibrated BatchNorm statistics.

Synopsis::

    from amla_jax.export import load_network
    net = load_network("runs/x")                          # the network best_spec.json names
    net = load_network("runs/x", candidate=3)
    net = load_network("spec.json", "runs/x/checkpoints/candidate_3", image_shape=(8, 8, 1))
    logits = net.forward(images)                          # (batch, num_classes)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from amla_jax import run_record, rundir
from amla_jax.errors import UserError
from amla_jax.spec import NetworkSpec

WEIGHTS = ("auto", "ema", "trained")


class ExportError(UserError):
    """An export cannot be made as asked; the message names the file or option."""


@dataclasses.dataclass(frozen=True)
class InferenceNetwork:
    """One trained network in eval mode.

    Attributes:
      spec: the network.
      num_classes: logits per image.
      image_shape: one image's (height, width, channels).
      variables: ``params`` (the evaluated weights), ``batch_stats``, ``nac_stats``.
      weights: which weights ``params`` holds: ``"ema"`` or ``"trained"``.
      checkpoint: the train state they were read from.
    """

    spec: NetworkSpec
    num_classes: int
    image_shape: tuple[int, int, int]
    variables: Any = dataclasses.field(repr=False)
    weights: str
    checkpoint: Path

    def forward(self, images):
        """Logits of ``images`` (batch, *image_shape), as ``amla_jax`` evaluates them."""
        from amla_jax.nn import build_model  # noqa: PLC0415 (Flax only when run)

        logits, _ = build_model(self.spec, self.num_classes).apply(
            self.variables, images, train=False
        )
        return logits


def load_network(
    source: str | Path,
    checkpoint: str | Path | None = None,
    *,
    candidate: int | None = None,
    weights: str = "auto",
    image_shape: tuple[int, int, int] | None = None,
) -> InferenceNetwork:
    """Reads a trained network from a run directory, or from a spec file and a checkpoint.

    Args:
      source: a run directory, or a spec file (ours or AMLA's) when ``checkpoint`` is given.
      checkpoint: a train-state checkpoint folder (``checkpoints/candidate_<i>``).
      candidate: with a run directory, the candidate to export (default: the one that
        trained ``best_spec.json``'s network, else the selected one).
      weights: ``ema``, ``trained``, or ``auto``: the EMA weights where the run's config
        keeps an EMA (``optim.ema_decay > 0``, also the default without a config).
      image_shape: one image's shape (default: the run config's dataset).

    Raises:
      ExportError: a missing file, an untrained candidate, an unknown shape or option.
    """
    if weights not in WEIGHTS:
        raise ExportError(f"--weights {weights!r}: use one of {', '.join(WEIGHTS)}")
    if checkpoint is None:
        run_dir = Path(source)
        spec, checkpoint = _run_candidate(run_dir, candidate)
    else:
        from amla_jax.amla import load_spec  # noqa: PLC0415

        checkpoint = Path(checkpoint)
        spec, run_dir = load_spec(source), checkpoint.absolute().parent.parent
    config = _read_config(run_dir)
    if weights == "auto":
        ema_decay = config.get("optim", {}).get("ema_decay", _default_ema_decay())
        weights = "ema" if ema_decay > 0 else "trained"
    tree = _restore(checkpoint)
    variables = {
        "params": tree["ema_params" if weights == "ema" else "params"],
        "batch_stats": tree.get("batch_stats") or {},
        "nac_stats": tree.get("nac_stats") or {},
    }
    shape = tuple(image_shape) if image_shape else _dataset_shape(config, checkpoint)
    return InferenceNetwork(
        spec, _num_classes(spec, variables["params"]), shape, variables, weights, checkpoint
    )


def _run_candidate(run_dir: Path, candidate: int | None) -> tuple[NetworkSpec, Path]:
    """The spec and checkpoint of ``candidate`` (default: the returned or selected one)."""
    record = run_record.read_run(run_dir)
    if record is None:
        raise ExportError(
            f"{run_dir}: no {rundir.CANDIDATES} with a trained candidate; pass a run "
            "directory, or a spec file and a checkpoint folder"
        )
    if candidate is None:
        candidate = record.returned_id if record.returned_id is not None else record.best_id
    ids = [row["id"] for row in record.rows]
    if candidate not in ids:
        raise ExportError(f"--candidate {candidate}: {run_dir} has candidates {ids}")
    checkpoint = run_dir / rundir.CHECKPOINTS_DIR / f"candidate_{candidate}"
    if not checkpoint.exists():
        raise ExportError(
            f"{checkpoint} does not exist: the run kept no train state for candidate "
            f"{candidate}; rerun it with train.checkpoint=true"
        )
    return NetworkSpec.from_json(record.row(candidate)["spec"]), checkpoint


def _read_config(run_dir: Path) -> dict:
    path = run_dir / rundir.HYDRA_DIR / "config.yaml"
    if not path.exists():
        return {}
    import yaml  # noqa: PLC0415

    return yaml.safe_load(path.read_text()) or {}


def _default_ema_decay() -> float:
    from amla_jax.config import OptimConfig  # noqa: PLC0415

    return OptimConfig().ema_decay


def _restore(checkpoint: Path) -> dict:
    """The checkpoint's arrays as host numpy trees (no target: any spec's state)."""
    if not checkpoint.is_dir():
        raise ExportError(f"checkpoint {checkpoint}: not a checkpoint folder")
    import orbax.checkpoint as ocp  # noqa: PLC0415 (slow import)

    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(checkpoint.absolute())


def _num_classes(spec: NetworkSpec, params) -> int:
    """The output width of the head's final dense layer (``head<i>``), from its kernel."""
    finals = [i for i, block in enumerate(spec.head) if block.block == "fc-final"]
    if not finals or f"head{finals[-1]}" not in params:
        raise ExportError("the spec's head has no fc-final layer with weights to export")
    return int(params[f"head{finals[-1]}"]["kernel"].shape[-1])


def _dataset_shape(config: dict, checkpoint: Path) -> tuple[int, int, int]:
    """One image's shape for the run config's dataset (tfds names need no data)."""
    dataset = config.get("dataset")
    if not dataset:
        raise ExportError(f"no .hydra/config.yaml beside {checkpoint}: pass --image-shape H,W,C")
    from amla_jax.data import DataConfig, load_dataset  # noqa: PLC0415
    from amla_jax.data.tfds_source import IMAGENET_CROP_SIZE, TFDS_DATASETS  # noqa: PLC0415

    if dataset["name"] in TFDS_DATASETS:
        shape = TFDS_DATASETS[dataset["name"]].image_shape
        return tuple(shape) if shape else (IMAGENET_CROP_SIZE, IMAGENET_CROP_SIZE, 3)
    fields = {f.name for f in dataclasses.fields(DataConfig)}
    cfg = DataConfig(**{k: v for k, v in dataset.items() if k in fields})
    return tuple(load_dataset(cfg).info.image_shape)
