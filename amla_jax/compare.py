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

writes ``<out>/summary.json`` (every trial's curve and returned arch), ``report.md``,
``anytime.png`` and (non-baseline objectives) ``scatter.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from amla_jax.errors import UserError, one_line

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
        finals = np.array([t["accuracy"] for t in trials])
        summary["algorithms"][name] = {
            "seconds": seconds,
            "mean": float(finals.mean()),
            "std": float(finals.std(ddof=1)) if seeds > 1 else 0.0,
            "trials": trials,
        }
        print(
            f"{name}: {finals.mean():.4f} ± {summary['algorithms'][name]['std']:.4f} "
            f"({seeds} seeds, {seconds:.1f} s)",
            flush=True,
        )
    return summary


def report_markdown(summary: dict, wall: float, command: str) -> str:
    """The comparison's table as Markdown."""
    lines = [
        f"# NB201 search comparison: objective `{summary['objective']}`",
        "",
        f"`{command}`",
        "",
        f"{summary['seeds']} seeds x {summary['queries']} queries per algorithm on "
        f"`{summary['source']}`; wall time {wall:.1f} s (imports included).",
        "",
        "| algorithm | returned arch accuracy (mean ± std) | best | worst | seconds |",
        "|---|---|---|---|---|",
    ]
    for name, entry in summary["algorithms"].items():
        finals = [t["accuracy"] for t in entry["trials"]]
        lines.append(
            f"| {name} | {100 * entry['mean']:.2f} ± {100 * entry['std']:.2f} % | "
            f"{100 * max(finals):.2f} | {100 * min(finals):.2f} | {entry['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: dict, out: Path) -> None:
    """anytime.png (best-so-far, mean ± std band) and, unless the objective is the
    baseline accuracy, scatter.png (baseline vs objective of each returned arch)."""
    from amla_jax.plots.figure import algorithm_colors, new_figure, save_figure  # noqa: PLC0415

    algos = summary["algorithms"]
    colors = algorithm_colors(list(algos))
    fig = new_figure(6.4, 4.4)
    ax = fig.add_subplot()
    for name, entry in algos.items():
        curves = 100 * np.array([t["curve"] for t in entry["trials"]])
        mean, std = curves.mean(0), curves.std(0)
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, color=colors[name], label=name)
        ax.fill_between(x, mean - std, mean + std, color=colors[name], alpha=0.15)
    ax.set(xlabel="queries", ylabel=f"best-so-far {summary['objective']} (%)")
    at = min(9, summary["queries"] - 1)  # the curves after 10 queries set the y range
    low = min(100 * np.mean([t["curve"][at] for t in e["trials"]]) for e in algos.values())
    high = max(100 * max(t["curve"][-1] for t in e["trials"]) for e in algos.values())
    ax.set_ylim(low - 1, high + 0.3)  # the first queries' wide bands would flatten the rest
    ax.legend(loc="lower right")
    save_figure(fig, out / "anytime.png")
    if summary["objective"] == "baseline_accuracy":
        return
    fig = new_figure(5.2, 4.6)
    ax = fig.add_subplot()
    for name, entry in algos.items():
        trials = entry["trials"]
        ax.scatter(
            [100 * t["baseline_accuracy"] for t in trials],
            [100 * t["accuracy"] for t in trials],
            s=12,
            alpha=0.6,
            color=colors[name],
            label=name,
        )
    ax.set(
        xlabel="baseline accuracy (%)",
        ylabel=f"{summary['objective']} (%)",
        title="returned architectures",
    )
    ax.legend(loc="lower right")
    save_figure(fig, out / "scatter.png")


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
    plot(summary, out)
    wall = time.perf_counter() - start
    summary["wall_seconds"] = wall
    (out / "summary.json").write_text(json.dumps(summary) + "\n")
    command = "python -m amla_jax.compare " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / "report.md").write_text(report_markdown(summary, wall, command))
    print(f"{out}/report.md, wall {wall:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
