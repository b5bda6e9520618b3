"""Compare finished searches: read run directories, aggregate over seeds, write a report.

A run directory is one that holds ``candidates.jsonl`` (`amla_jax.rundir` reads it back);
its ``.hydra/config.yaml`` (written by the entry point) gives the algorithm, seed and
dataset, and ``.hydra/overrides.yaml`` the *setting*: the command-line overrides other
than ``seed``, ``algo`` and ``hydra.*``. Runs are grouped by (algorithm, setting) and
every column is the mean ± sample standard deviation over the group's runs (seeds).

Which network a run is judged by: the *selected candidate* is the trained candidate with
the best validation accuracy (`amla_jax.rundir.best_candidate`, the same rule for every
algorithm; the test split is never used to choose). That is also what ``random``
returns. NAC returns ``arch_{iterations}`` (``best_spec.json``), which it constructs but
does not train, so its accuracy is unknown; the *final net* columns give the network the
search returns if it trained it, else the last network it trained.

Space searches on the tabular evaluator (``evaluator=tabular`` runs, or one ``python -m
amla_jax.compare`` folder with its ``summary.json``) are also compared as searches: per
algorithm the mean ± std of the returned architecture's objective, the anytime plot and
the baseline-vs-objective scatter (`searches`, `search_write`).

The package: `runs` (finding runs), `table` (the comparison), `markdown` (the text),
`write` (the folder, plots via `amla_jax.plots`), `searches` and `search_write` (the
space-search comparison), `cli` (``amla report``). Importing it imports neither JAX nor
matplotlib.

Synopsis::

    from amla_jax.report import collect, compare, read_summary, write_report
    records = collect(["multirun/2026-01-01/12-00-00"])   # sweep roots or run dirs
    print(compare(records).to_markdown())
    write_report(["multirun/2026-01-01/12-00-00"], "report/")  # report.md + PNGs

    python -m amla_jax.report multirun/2026-01-01/12-00-00 --out report   # or: amla report
    amla report experiments/nb201_compare/analog --out report   # a compare summary
    read_summary("experiments/nb201_compare/analog").to_markdown()
"""

from amla_jax.report.cli import main
from amla_jax.report.markdown import report_markdown, runs_markdown
from amla_jax.report.runs import ReportError, collect, find_run_dirs
from amla_jax.report.search_write import write_summary_report
from amla_jax.report.searches import (
    SearchComparison,
    SearchGroup,
    Trial,
    from_records,
    from_summary,
    read_summary,
)
from amla_jax.report.table import (
    COLUMNS,
    DEFAULT_COLUMNS,
    Column,
    Comparison,
    Group,
    Stat,
    compare,
    returned_params,
)
from amla_jax.report.write import write_plots, write_report
from amla_jax.run_record import RunRecord, read_run

__all__ = [
    "COLUMNS",
    "DEFAULT_COLUMNS",
    "Column",
    "Comparison",
    "Group",
    "ReportError",
    "RunRecord",
    "SearchComparison",
    "SearchGroup",
    "Stat",
    "Trial",
    "collect",
    "compare",
    "find_run_dirs",
    "from_records",
    "from_summary",
    "main",
    "read_run",
    "read_summary",
    "report_markdown",
    "returned_params",
    "runs_markdown",
    "write_plots",
    "write_report",
    "write_summary_report",
]
