"""The NAC ablation's results table, written into this folder's README.

A thin wrapper over `amla_jax.report` (which reads the runs, picks the networks and
aggregates over seeds; see its docstring for the rules): it selects the columns the
README explains and replaces the text between the README's result markers. Per algorithm,
mean ± sample std over seeds of:

- the *final net* (the network the search returns if it trained it, else the last
  network it trained: NAC's answer ``arch_{iterations}`` is constructed, not trained):
  test accuracy and parameters;
- the best-by-validation candidate's test accuracy (the same rule for every algorithm);
- the parameters of ``best_spec.json`` (for NAC, the untrained constructed network);
- the training time of the run (train + compile seconds of all candidates).

Synopsis::

    python experiments/nac_ablation/report.py multirun/nac_ablation
    python experiments/nac_ablation/report.py multirun/nac_ablation \
        --write experiments/nac_ablation/README.md --plots experiments/nac_ablation/report
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from amla_jax.report import COLUMNS, ReportError, collect, compare, write_report

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
LABELS = {
    "final_test_accuracy": "final net test acc %",
    "final_num_params": "final net params",
    "test_accuracy": "best-val candidate test acc %",
    "returned_params": "best_spec.json params",
    "search_seconds": "train s / run",
}
ABLATION_COLUMNS = [(name, dataclasses.replace(COLUMNS[name], label=label)) for name, label in LABELS.items()]  # fmt: skip


def replace_results(readme: Path, markdown: str) -> None:
    """Puts ``markdown`` between the README's result markers."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise ReportError(f"{readme}: needs the markers {BEGIN} and {END}")
    head, rest = text.split(BEGIN, 1)
    readme.write_text(f"{head}{BEGIN}\n{markdown}\n{END}{rest.split(END, 1)[1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="multirun or run directories")
    parser.add_argument("--write", type=Path, help=f"replace {BEGIN}...{END} in this file")
    parser.add_argument("--plots", type=Path, help="also write the full report (PNGs) here")
    args = parser.parse_args(argv)
    try:
        records = [r for r in collect(args.paths) if r.finished]
        if not records:
            raise ReportError("no finished run (best_spec.json) under the given paths")
        markdown = compare(records, ABLATION_COLUMNS).to_markdown()
        if args.write:
            replace_results(args.write, markdown)
        if args.plots:
            write_report(args.paths, args.plots)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
