"""Writes the AMLA-format networks in this folder from the project's own configs.

Each file is ``conf/model/<name>.yaml``'s network, exported by the project's AMLA
exporter (`amla_jax.spec.save_spec` with ``amla=True``), so ``spec=`` runs and AMLA itself
read the same network as ``model=<name>``. The files are committed; tests/test_examples.py
fails when they no longer equal what the exporter writes.

Synopsis::

    python examples/amla/export.py            # rewrite the files beside this script
    python examples/amla/export.py --check    # exit 1 if a committed file is stale
    python -m amla_jax algo=fixed spec=examples/amla/config.run.json train.steps=400
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from amla_jax.amla import save_spec
from amla_jax.zoo import load_network

HERE = Path(__file__).resolve().parent
# File name (AMLA's names for the same networks) -> conf/model config.
EXPORTS = {
    "config.run.json": "amla_run",
    "config.nac.final.json": "nac_cifar10",
}


def export(directory: Path) -> list[Path]:
    """Writes every network of `EXPORTS` into ``directory``; returns the paths written."""
    paths = []
    for filename, model in EXPORTS.items():
        path = Path(directory) / filename
        save_spec(load_network(model), path, amla=True)
        paths.append(path)
    return paths


def stale_files(directory: Path = HERE) -> list[str]:
    """The names of the files in ``directory`` that differ from a fresh export (or are missing)."""
    with tempfile.TemporaryDirectory() as fresh:
        return [
            path.name
            for path in export(Path(fresh))
            if not (directory / path.name).is_file()
            or (directory / path.name).read_text() != path.read_text()
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(HERE)
        for name in stale:
            print(f"{HERE / name}: stale; run python examples/amla/export.py", file=sys.stderr)
        return 1 if stale else 0
    for path in export(HERE):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
