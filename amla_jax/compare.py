"""Compare space searches on the tabular evaluator: algorithms x seeds x queries, in-process.

No run directories and no Orbax: each trial drives an algorithm's pure ``init``/``ask``/
``tell`` with the search loop's keys (candidate ``i`` asks with ``split(fold_in(key, i))``,
as `amla_jax.search.run_search` does) against `amla_jax.evaluators.tabular`, so one trial
equals ``python -m amla_jax algo=<a> search_space=nb201 evaluator=tabular seed=<s>``
(``algo.iterations=<queries>``). Per algorithm it reports mean ± std (over seeds) of the
accuracy of the architecture the search returns (``best``), an anytime plot (best-so-far
objective vs queries, mean with a ±1 std band) and, when the objective is not the
baseline accuracy, a scatter of the returned archs' baseline vs objective accuracy.

Synopsis::

    python -m amla_jax.compare --algos random_space,evolution --seeds 100 --queries 300 \\
        --objective baseline_accuracy --out experiments/nb201_compare/baseline

writes ``<out>/summary.json`` (every trial's curve and returned arch, the command and
its wall time), ``report.md``, ``anytime.png`` and (non-baseline objectives)
``scatter.png``; the table and the plots are `amla_jax.report.searches` and
`amla_jax.plots.anytime`'s, so ``amla report <out>`` writes them again from the summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from amla_jax.errors import UserError, one_line
from amla_jax.report.search_write import summary_markdown, write_search_plots
from amla_jax.report.searches import SUMMARY, from_summary, mean_std

DEFAULT_ALGOS = "random_space,evolution,local_search,reinforce,bananas"


def run_trial(algorithm, evaluate, space, key, queries: int, column: str):
    """One search of ``queries`` lookups; its best-so-far objective curve and the returned
    arch's accuracies (``column`` and baseline)."""
    import jax  # noqa: PLC0415

    init_key, search_key = jax.random.split(key)
    # The search loop's keys, split(fold_in(search_key, i)), all at once as raw key data
    # (one dispatch, not 2 per query; the spaces seed numpy from the key's data alike).
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(search_key, i)))(
        jax.numpy.arange(queries)
    )
    keys = np.asarray(jax.random.key_data(keys))
    state, curve, best = algorithm.init(init_key), [], -np.inf
    for i in range(queries):
        ask_key, eval_key = keys[i]
        spec, state = algorithm.ask(ask_key, state)
        result = evaluate(spec, eval_key, i)
        state = algorithm.tell(state, spec, result)
        best = max(best, result.metrics["validation/accuracy"])
        curve.append(best)
    arch = space.from_spec(algorithm.best(state))
    metrics = evaluate.metrics(arch)
    return curve, {
        "arch": list(arch),
        "arch_string": space.describe(arch),
        "accuracy": metrics["validation/accuracy"],
        "baseline_accuracy": metrics["table/baseline_accuracy"],
    }


def compare(algos, seeds: int, queries: int, objective: str, options=None) -> dict:
    """Every (algorithm, seed) trial, as the summary JSON data."""
    import jax  # noqa: PLC0415

    from amla_jax.algos import get_algorithm  # noqa: PLC0415
    from amla_jax.config import AlgoConfig  # noqa: PLC0415
    from amla_jax.evaluators.tabular import make_tabular_evaluator  # noqa: PLC0415
    from amla_jax.spaces import get_space  # noqa: PLC0415

    evaluate = make_tabular_evaluator(objective)
    space = get_space("nb201")()
    summary = {
        "objective": objective,
        "seeds": seeds,
        "queries": queries,
        "source": evaluate.source,
    }
    summary["algorithms"] = {}
    for name in algos:
        start = time.perf_counter()
        algo_options = {"space": "nb201", **(options or {}).get(name, {})}
        algorithm = get_algorithm(name)(AlgoConfig(name, queries, algo_options), None)
        trials = []
        for seed in range(seeds):
            curve, returned = run_trial(
                algorithm, evaluate, space, jax.random.key(seed), queries, objective
            )
            trials.append({"seed": seed, "curve": curve, **returned})
        seconds = time.perf_counter() - start
        mean, std = mean_std([t["accuracy"] for t in trials])  # amla report's aggregation
        summary["algorithms"][name] = {"seconds": seconds, "mean": mean, "std": std}
        summary["algorithms"][name]["trials"] = trials
        print(f"{name}: {mean:.4f} ± {std:.4f} ({seeds} seeds, {seconds:.1f} s)", flush=True)
    return summary


def main(argv=None) -> int:
    start = time.perf_counter()
    parser = argparse.ArgumentParser(
        prog="python -m amla_jax.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--algos", default=DEFAULT_ALGOS)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--objective", default="baseline_accuracy", help="a table column")
    parser.add_argument("--options", default="{}", help='JSON {"algo": {option: value}}')
    parser.add_argument("--out", default="experiments/nb201_compare")
    args = parser.parse_args(argv)
    from amla_jax.runner import enable_compilation_cache, prefer_fast_compiles  # noqa: PLC0415

    prefer_fast_compiles()  # BANANAS' ensemble compiles once per padded size
    enable_compilation_cache()
    try:
        summary = compare(
            args.algos.split(","),
            args.seeds,
            args.queries,
            args.objective,
            json.loads(args.options),
        )
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = write_search_plots(from_summary(summary), out)
    summary["wall_seconds"] = wall = time.perf_counter() - start
    args_text = " ".join(argv if argv is not None else sys.argv[1:])
    summary["command"] = f"python -m amla_jax.compare {args_text}"
    (out / SUMMARY).write_text(json.dumps(summary) + "\n")
    # The same report.md as `amla report <out>` writes from summary.json.
    (out / "report.md").write_text(summary_markdown(from_summary(summary), images, out))
    print(f"{out}/report.md, wall {wall:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
