"""Tests for amla_jax.report and amla_jax.plots: reading runs, the table, the pictures."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, TINY_NETWORK
from PIL import Image

from amla_jax import plots
from amla_jax.amla import save_spec
from amla_jax.report import collect, compare, main, read_run, returned_params, write_report
from amla_jax.spec import NetworkSpec


def variant(width: int) -> dict:
    """TINY_NETWORK with another first-layer width: a different network."""
    spec = copy.deepcopy(TINY_NETWORK)
    spec["arch"]["network"][0]["outputs"] = width
    return spec


def make_run(
    run_dir: Path,
    algorithm: str,
    seed: int,
    candidates: list[tuple[float, float]],
    returned: int | None = None,
    overrides: tuple[str, ...] = (),
    flops: float | None = 2e6,
) -> Path:
    """A run directory as the entry point leaves it: ``candidates`` are (val, test)
    accuracies; candidate i trains ``variant(16 + i)``; ``best_spec.json`` is candidate
    ``returned``'s network, or an untrained one (as NAC's) when None."""
    (run_dir / ".hydra").mkdir(parents=True)
    config = {
        "algo": {"name": algorithm, "iterations": len(candidates), "options": {}},
        "dataset": {"name": "digits"},
        "seed": seed,
    }
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    all_overrides = [f"algo={algorithm}", f"seed={seed}", "hydra.sweep.dir=x", *overrides]
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(all_overrides))
    rows = [
        {
            "id": i,
            "algorithm": algorithm,
            "spec": NetworkSpec.from_json(variant(16 + i)).to_json(),
            "metrics": {"validation/accuracy": val, "test/accuracy": test},
            "num_params": 1000 * (i + 1),
            "flops": flops,
            "steps": 4,
            "train_seconds": 10.0,
            "compile_seconds": 5.0 * (i + 1),
        }
        for i, (val, test) in enumerate(candidates)
    ]
    (run_dir / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    best = variant(16 + returned) if returned is not None else variant(40)
    save_spec(NetworkSpec.from_json(best), run_dir / "best_spec.json", amla=True)
    return run_dir


@pytest.fixture
def sweep(tmp_path) -> Path:
    """A multirun root: nac and random, seeds 0 and 1, in Hydra's sweep layout."""
    root = tmp_path / "multirun"
    make_run(root / "algo=nac" / "seed=0", "nac", 0, [(0.5, 0.6), (0.7, 0.8)])
    make_run(root / "algo=nac" / "seed=1", "nac", 1, [(0.6, 0.7), (0.6, 0.9)])
    make_run(root / "algo=random" / "seed=0", "random", 0, [(0.4, 0.5), (0.3, 0.4)], returned=0)
    make_run(root / "algo=random" / "seed=1", "random", 1, [(0.2, 0.2), (0.5, 0.6)], 1, flops=None)
    return root


def test_collect_reads_each_run(sweep):
    records = collect([sweep])
    assert [(r.algorithm, r.seed) for r in records] == [
        ("nac", 0),
        ("nac", 1),
        ("random", 0),
        ("random", 1),
    ]
    nac0, nac1, random0, random1 = records
    assert nac0.dataset == "digits" and nac0.setting == ()
    assert nac0.best_id == 1 and nac0.test_accuracy == 0.8
    assert nac1.best_id == 0 and nac1.test_accuracy == 0.7  # a tie goes to the earliest
    assert nac0.returned_id is None and nac0.final_row["id"] == 1  # constructed, untrained
    assert random0.returned_id == 0 and random0.final_test_accuracy == 0.5
    assert nac0.search_seconds == 10 + 5 + 10 + 10
    assert collect([sweep / "algo=nac" / "seed=1"])[0].seed == 1  # a run directory itself


def test_compare_gives_mean_std_and_n_per_algorithm(sweep):
    table = compare(collect([sweep]))
    assert [(g.algorithm, g.seeds) for g in table.groups] == [("nac", [0, 1]), ("random", [0, 1])]
    nac, random = (g.stats for g in table.groups)
    assert nac["test_accuracy"].mean == pytest.approx(75.0)
    assert nac["test_accuracy"].std == pytest.approx(7.0710678)  # sample std of 80, 70
    assert nac["test_accuracy"].n == 2
    assert nac["validation_accuracy"].mean == pytest.approx(65.0)
    assert nac["final_test_accuracy"].mean == pytest.approx(85.0)  # last trained: 80, 90
    assert random["final_test_accuracy"].mean == pytest.approx(55.0)  # returned: 50, 60
    assert nac["num_params"].mean == 1500
    assert random["flops"].n == 1 and random["flops"].mean == pytest.approx(2.0)  # one None
    assert nac["search_seconds"].mean == 35 and nac["search_seconds"].std == 0


def test_markdown_table(sweep):
    markdown = compare(collect([sweep])).to_markdown()
    lines = markdown.splitlines()
    assert lines[0].startswith("| algorithm | setting | runs (seeds) | test acc % |")
    assert len(lines) == 4 and all(line.count("|") == lines[0].count("|") for line in lines)
    assert "| nac | – | 2 (0,1) | 75.0 ± 7.1 | 65.0 ± 7.1 | 1,500 ± 707 |" in markdown
    assert "2.00 (n=1)" in lines[3]


def test_runs_are_grouped_by_setting(tmp_path):
    root = tmp_path / "sweep"
    for steps in (100, 200):
        for seed in (0, 1):
            make_run(
                root / f"steps={steps}" / f"seed={seed}",
                "nac",
                seed,
                [(0.5, steps / 1000 + seed / 100)],
                overrides=(f"train.steps={steps}", "dataset=digits"),
            )
    table = compare(collect([root]))
    assert [g.setting for g in table.groups] == [
        ("dataset=digits", "train.steps=100"),
        ("dataset=digits", "train.steps=200"),
    ]
    assert table.groups[1].stats["test_accuracy"].mean == pytest.approx(20.5)
    assert table.shared_setting() == ("dataset=digits",)
    markdown = table.to_markdown()
    assert "| nac | `train.steps=100` | 2 (0,1) | 10.5 ± 0.7 |" in markdown


def test_unfinished_and_empty_runs(tmp_path, sweep):
    (sweep / "algo=nac" / "seed=0" / "best_spec.json").unlink()
    empty = sweep / "algo=nac" / "seed=2"
    make_run(empty, "nac", 2, [(0.1, 0.1)])
    (empty / "candidates.jsonl").write_text("")
    records = collect([sweep])
    assert len(records) == 4 and read_run(empty) is None
    assert not records[0].finished and records[0].returned_id is None


def test_wall_seconds_from_file_times(sweep):
    run_dir = sweep / "algo=nac" / "seed=0"
    os.utime(run_dir / ".hydra" / "config.yaml", (1000.0, 1000.0))
    os.utime(run_dir / "candidates.jsonl", (1600.0, 1600.0))
    assert read_run(run_dir).wall_seconds == 600.0
    # A relaunch rewrites .hydra/config.yaml; metrics.jsonl still dates the first launch.
    os.utime(run_dir / ".hydra" / "config.yaml", (2000.0, 2000.0))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"run": "c0", "time": 1100.0}) + "\n")
    assert read_run(run_dir).wall_seconds == 600.0 - 100.0 + 15.0


def test_returned_params_counts_an_untrained_network(sweep):
    nac, _, random, _ = collect([sweep])
    assert returned_params(random) == 1000
    from amla_jax.nn import count_params

    expected = count_params(NetworkSpec.from_json(variant(40)), (8, 8, 1), 10)
    assert returned_params(nac) == expected > 0


def assert_png(path: Path, min_width: int = 500, min_height: int = 250) -> None:
    """A real picture: big enough, and more than a few colours (not blank)."""
    assert path.exists() and path.stat().st_size > 10_000, path
    with Image.open(path) as image:
        assert image.width >= min_width and image.height >= min_height, image.size
        colors = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert len(colors) > 50, path


def test_write_report_writes_markdown_and_plots(sweep, tmp_path):
    out = tmp_path / "report"
    path = write_report([sweep], out)
    text = path.read_text()
    assert "# Search report" in text and "4 runs under" in text
    assert "| nac | – | 2 (0,1) | 75.0 ± 7.1 |" in text
    assert "![accuracy_vs_time](accuracy_vs_time.png)" in text
    assert "constructed, not trained" in text and "candidate 0" in text
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 2 + 4
    for png in pngs:
        assert png.relative_to(out).as_posix() in text
        assert_png(png)


def load_model(name: str) -> NetworkSpec:
    return NetworkSpec.from_json(yaml.safe_load((ROOT / "conf/model" / f"{name}.yaml").read_text())["network"])  # fmt: skip


@pytest.mark.parametrize("name", ["envelopenet", "darts_v2", "enas_macro", "amla_run", "nb201"])
def test_draw_network_for_every_body_type(name, tmp_path):
    path = plots.save_figure(plots.draw_network(load_model(name)), tmp_path / f"{name}.png")
    assert_png(path)


def test_training_curves_of_a_run(sweep, tmp_path):
    run_dir = sweep / "algo=nac" / "seed=0"
    records = [
        {"run": f"candidate_{c}", "step": s, "time": 1.0, "train/loss": 2.0 / s + c}
        for c in (0, 1)
        for s in (1, 2, 3)
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    figure = plots.plot_training_curves(read_run(run_dir))
    assert_png(plots.save_figure(figure, tmp_path / "curves.png"))


def test_main_prints_the_table_and_writes_the_report(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out), "--columns", "test_accuracy,num_candidates"]) == 0
    printed = capsys.readouterr().out
    assert "| algorithm | setting | runs (seeds) | test acc % | candidates |" in printed
    assert (out / "report.md").exists() and (out / "search_progress.png").exists()
    assert main([str(sweep), "--no-plots"]) == 0
    assert (sweep / "report" / "report.md").exists()
    assert not (sweep / "report" / "search_progress.png").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["/no/such/dir"], "no such file"),
        (["EMPTY"], "no runs"),
        (["SWEEP", "--columns", "accuracy"], "unknown column 'accuracy'"),
        (["SWEEP", "--bogus"], "unrecognized arguments"),
        ([], "required: paths"),
    ],
)
def test_bad_input_exits_2_with_one_error_line(args, words, sweep, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = [{"EMPTY": str(tmp_path / "empty"), "SWEEP": str(sweep)}.get(a, a) for a in args]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0]


def test_help_and_python_dash_m(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--out" in capsys.readouterr().out
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "amla_jax.report", str(tmp_path)]
    bad = subprocess.run(command, capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no runs"), bad.stderr


def load_ablation_report():
    path = ROOT / "experiments" / "nac_ablation" / "report.py"
    spec = importlib.util.spec_from_file_location("nac_ablation_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nac_ablation_wrapper_writes_the_readme_table(sweep, tmp_path, capsys):
    ablation = load_ablation_report()

    readme = tmp_path / "README.md"
    readme.write_text(f"# Ablation\n\n{ablation.BEGIN}\nold\n{ablation.END}\ntail\n")
    assert ablation.main([str(sweep), "--write", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and text.endswith(f"{ablation.END}\ntail\n")
    assert "| final net test acc % | final net params | best-val candidate test acc % |" in text
    assert "| nac | – | 2 (0,1) | 85.0 ± 7.1 | 2,000 ± 0 | 75.0 ± 7.1 |" in text
    assert ablation.main([str(tmp_path / "nothing")]) == 2
