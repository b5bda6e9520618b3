"""``amla report`` as the space-search comparison: a compare summary, tabular runs, bad input.

The numbers are checked against what the files say, computed here without the report's
code (json, yaml and statistics only).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from amla_jax.report import collect, from_records, main, read_summary

COMPARE = ROOT / "experiments" / "nb201_compare"


def _row_of(line: str, printed: str) -> list[str]:
    """The cells of the last printed row that starts with ``line`` (the runs table comes
    first, the search comparison last)."""
    row = [r for r in printed.splitlines() if r.startswith(f"| {line} |")][-1]
    return [c.strip() for c in row.strip("|").split("|")]


@pytest.mark.parametrize("objective", ["analog", "baseline"])
def test_a_compare_summary_is_reported_with_its_own_numbers(objective, tmp_path, capsys):
    folder = COMPARE / objective
    summary = json.loads((folder / "summary.json").read_text())
    # summary.json's mean/std were computed in float32: equal to float32 precision (~1e-7).
    out = tmp_path / "report"
    assert main([str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (out / "anytime.png").exists()
    assert (out / "scatter.png").exists() == (summary["objective"] != "baseline_accuracy")
    text = (out / "report.md").read_text()
    comparison = read_summary(folder)
    for name, entry in summary["algorithms"].items():
        group = next(g for g in comparison.groups if g.name == name)
        assert group.mean == pytest.approx(entry["mean"], abs=1e-7)
        assert group.std == pytest.approx(entry["std"], abs=1e-7)
        finals = [t["accuracy"] for t in entry["trials"]]
        expected = f"{100 * entry['mean']:.2f} ± {100 * entry['std']:.2f}"
        cells = _row_of(name, printed)
        assert cells[1:3] == [str(len(entry["trials"])), expected]
        assert f"{100 * max(finals):.2f}" in cells and f"{100 * min(finals):.2f}" in cells
        assert "| " + " | ".join(cells) + " |" in text


needs_table = pytest.mark.skipif(
    importlib.util.find_spec("analognasbench") is None,
    reason='needs the tabular extra: pip install -e ".[tabular]"',
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A real multirun through the entry point: 2 algorithms x 2 seeds x 20 lookups."""
    sweep = tmp_path_factory.mktemp("tabular") / "sweep"
    args = [
        "-m",
        "algo=random_space,local_search",
        "search_space=nb201",
        "evaluator=tabular",
        "evaluator.column=analog_accuracy",
        "seed=0,1",
        "algo.iterations=20",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "amla_jax", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return sweep


def _expected(sweep: Path) -> dict[str, list[tuple[float, float, list[float]]]]:
    """Per algorithm: (analog, baseline accuracy of best_spec.json's arch, best-so-far
    curve) of each run, read straight from the files."""
    found: dict[str, list] = {}
    for rows_file in sorted(sweep.rglob("candidates.jsonl")):
        run = rows_file.parent
        algo = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["algo"]["name"]
        rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line]
        ops = json.loads((run / "best_spec.json").read_text())["arch"]["ops"]
        returned = [r for r in rows if r["spec"]["arch"]["ops"] == ops][-1]["metrics"]
        values = [r["metrics"]["table/analog_accuracy"] for r in rows]
        curve = [max(values[: i + 1]) for i in range(len(values))]
        found.setdefault(algo, []).append(
            (returned["table/analog_accuracy"], returned["table/baseline_accuracy"], curve)
        )
    return found


@needs_table
def test_tabular_runs_are_compared_per_algorithm(sweep, tmp_path, capsys):
    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = _expected(sweep)
    assert sorted(expected) == ["local_search", "random_space"]
    (comparison,) = from_records(collect([sweep]))
    assert comparison.objective == "analog_accuracy"
    assert [g.name for g in comparison.groups] == ["local_search", "random_space"]
    for group in comparison.groups:
        runs = expected[group.name]
        accuracies = [a for a, _, _ in runs]
        assert len(group.trials) == 2
        assert group.mean == pytest.approx(statistics.fmean(accuracies))
        assert group.std == pytest.approx(statistics.stdev(accuracies))
        mean_text = f"{100 * statistics.fmean(accuracies):.2f}"
        assert _row_of(group.name, printed)[2] == f"{mean_text} ± {100 * group.std:.2f}"
        baselines = [b for _, b, _ in runs]
        assert group.baseline[0] == pytest.approx(statistics.fmean(baselines))
        curves = sorted(list(t.curve) for t in group.trials)
        for got, want in zip(curves, sorted(curve for _, _, curve in runs), strict=True):
            assert got == pytest.approx(want)
    text = (out / "report.md").read_text()
    assert "## Search comparison (tabular runs)" in text and "| algorithm | setting |" in text
    assert (out / "anytime.png").exists() and (out / "scatter.png").exists()


@needs_table
def test_runs_with_another_objective_are_another_comparison(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    for config_file in copy.glob("*algo=local_search*/seed=*/.hydra/config.yaml"):
        config = yaml.safe_load(config_file.read_text())
        config["algo"]["options"]["objective"] = "baseline_accuracy"
        config_file.write_text(yaml.safe_dump(config))
    analog, baseline = from_records(collect([copy]))
    assert (analog.objective, baseline.objective) == ("analog_accuracy", "baseline_accuracy")
    assert [g.name for g in analog.groups] == ["random_space"]
    assert [g.name for g in baseline.groups] == ["local_search"]
    runs = _expected(copy)["local_search"]
    # The same returned archs, now judged by the baseline column they maximised.
    assert baseline.groups[0].mean == pytest.approx(statistics.fmean(b for _, b, _ in runs))
    out = tmp_path / "report"
    assert main([str(copy), "--out", str(out)]) == 0
    assert (out / "anytime.png").exists() and (out / "anytime_baseline_accuracy.png").exists()
    assert not (out / "scatter_baseline_accuracy.png").exists()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"objective": "baseline_accuracy", "source": "t"}',
        '{"objective": "a", "source": "t", "algorithms": {}}',
        '{"objective": "a", "source": "t", "algorithms": {"r": {"trials": [{"curve": [0.5]}]}}}',
        '{"objective": "a", "source": "t", "algorithms": {"r": {"trials": [{"curve": [], '
        '"accuracy": 0.5, "baseline_accuracy": 0.5}]}}}',
    ],
)
def test_a_summary_of_a_wrong_shape_is_one_error_line(content, tmp_path, capsys):
    (tmp_path / "summary.json").write_text(content)
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "summary.json" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_summary_is_reported_alone(tmp_path, capsys):
    args = [str(COMPARE / "analog"), str(COMPARE / "baseline"), "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one python -m amla_jax.compare folder" in err[0]


def test_a_summary_file_reports_beside_itself(tmp_path, capsys):
    summary = tmp_path / "summary.json"
    shutil.copy(COMPARE / "baseline" / "summary.json", summary)
    assert main([str(summary), "--no-plots"]) == 0
    assert "| bananas | 100 | 94.07 ± 0.00 |" in capsys.readouterr().out
    assert (tmp_path / "report" / "report.md").exists()
    assert not (tmp_path / "report" / "anytime.png").exists()
