"""python -m amla_jax.compare at tiny sizes: a trial equals the search loop's run."""

import json

import jax
import numpy as np
import pytest

pytest.importorskip("analognasbench")

from amla_jax.algos import get_algorithm  # noqa: E402
from amla_jax.compare import main, run_trial  # noqa: E402
from amla_jax.config import AlgoConfig  # noqa: E402
from amla_jax.evaluators.tabular import make_tabular_evaluator  # noqa: E402
from amla_jax.report import main as report_main  # noqa: E402
from amla_jax.spaces import get_space  # noqa: E402


def test_a_trial_asks_what_the_search_loop_asks():
    evaluate, space = make_tabular_evaluator(), get_space("nb201")()
    options = {"population": 4, "tournament": 2}
    algorithm = get_algorithm("evolution")(AlgoConfig("evolution", 12, options), None)
    key = jax.random.key(3)
    curve, returned = run_trial(algorithm, evaluate, space, key, 12, "baseline_accuracy")
    init_key, search_key = jax.random.split(key)  # as run_search does
    state, scores = algorithm.init(init_key), []
    for i in range(12):
        ask_key, eval_key = jax.random.split(jax.random.fold_in(search_key, i))
        spec, state = algorithm.ask(ask_key, state)
        result = evaluate(spec, eval_key, i)
        scores.append(result.metrics["validation/accuracy"])
        state = algorithm.tell(state, spec, result)
    np.testing.assert_array_equal(curve, np.maximum.accumulate(scores))
    assert returned["arch"] == list(space.from_spec(algorithm.best(state)))


def test_the_command_writes_a_report(tmp_path):
    out = tmp_path / "cmp"
    args = ["--algos", "random_space,evolution", "--seeds", "2", "--queries", "12"]
    assert main([*args, "--objective", "analog_accuracy", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["algorithms"]) == {"random_space", "evolution"}
    assert len(summary["algorithms"]["evolution"]["trials"][0]["curve"]) == 12
    assert "random_space" in (out / "report.md").read_text()
    assert (out / "anytime.png").exists() and (out / "scatter.png").exists()
    # One implementation: amla report writes the same report.md from summary.json.
    assert report_main([str(out), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.md").read_text() == (out / "report.md").read_text()
    assert summary["command"].startswith("python -m amla_jax.compare --algos")
    assert main([*args, "--objective", "nope", "--out", str(out)]) == 2
