"""``amla export``: a trained network as an inference artifact (StableHLO, ONNX, SavedModel).

Exit codes: 0 written and checked, 2 a usage error (missing file, untrained candidate,
missing extra, logits that disagree) with one ``error: ...`` line on stderr.

Synopsis::

    amla export runs/x --format stablehlo                 # -> runs/x/export/stablehlo/
    amla export runs/x --format onnx --candidate 3 --out model/
    amla export spec.json runs/x/checkpoints/candidate_3 --format stablehlo --image-shape 8,8,1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amla_jax.errors import UserError
from amla_jax.export.network import WEIGHTS

USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amla export",
        description="Export a trained network for inference; the artifact is reloaded and "
        "its logits are checked against amla_jax's before it is reported.",
    )
    parser.add_argument("source", type=Path, help="a run directory, or a spec file (JSON)")
    parser.add_argument(
        "checkpoint", type=Path, nargs="?", help="with a spec file: a checkpoint folder"
    )
    parser.add_argument("--format", "-f", default="stablehlo", help="stablehlo|onnx|savedmodel")
    parser.add_argument("--out", "-o", type=Path, help="default: <run dir>/export/<format>")
    parser.add_argument("--candidate", type=int, help="default: best_spec.json's network")
    parser.add_argument("--weights", default="auto", choices=WEIGHTS, help="default: auto")
    parser.add_argument("--image-shape", help="H,W,C (default: the run's dataset)")
    parser.add_argument("--check-batch", type=int, default=4, help="images in the check")
    return parser


def _image_shape(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    from amla_jax.export.network import ExportError  # noqa: PLC0415

    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ExportError(f"--image-shape {text!r}: use H,W,C, e.g. 32,32,3")
    return shape


def main(argv: list[str] | None = None) -> int:
    """Runs ``amla export`` on ``argv``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        # JAX is imported only once the arguments are known to be well formed.
        from amla_jax.export.formats import export_network  # noqa: PLC0415
        from amla_jax.export.network import load_network  # noqa: PLC0415

        net = load_network(
            args.source,
            args.checkpoint,
            candidate=args.candidate,
            weights=args.weights,
            image_shape=_image_shape(args.image_shape),
        )
        base = args.source if args.checkpoint is None else args.checkpoint.parent.parent
        out = args.out or base / "export" / args.format
        result = export_network(net, args.format, out, args.check_batch)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    print(
        f"{result.format}: {result.path} ({net.weights} weights of {net.checkpoint.name}, "
        f"input (batch, {', '.join(map(str, net.image_shape))}), {net.num_classes} logits; "
        f"reloaded logits within {result.max_abs_diff:.2g} of amla_jax's)"
    )
    return 0
