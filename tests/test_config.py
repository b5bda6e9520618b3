"""Every option of every config group in conf/ composes into the typed RunConfig.

Composition goes through the entry point's `compose_config` (the project's schema
registered, as ``python -m amla_jax`` does) and `OmegaConf.to_object`, so a YAML key the
schema lacks, or a value of the wrong type, fails here rather than in a user's run.
"""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ROOT
from omegaconf import OmegaConf

from amla_jax.__main__ import compose_config
from amla_jax.config import RunConfig
from amla_jax.spec import BODY_TYPES, NetworkSpec

CONF = ROOT / "conf"
# Groups a user picks on the command line. hydra/ holds launcher presets
# (test_launchers.py); model_on_dataset is picked by Hydra from ${model}_${dataset},
# debug_on_algo from ${debug}_${algo}.
PICKED = ("hydra", "model_on_dataset", "debug_on_algo")
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in PICKED)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def run_config(*overrides: str) -> RunConfig:
    """The typed config that ``python -m amla_jax OVERRIDES`` runs with."""
    run = OmegaConf.to_object(compose_config([*overrides, "run_dir=."]))
    assert isinstance(run, RunConfig)
    return run


def test_the_groups_are_found_and_none_is_empty():
    assert GROUPS == [
        "algo",
        "dataset",
        "debug",
        "evaluator",
        "experiment",
        "model",
        "optim",
        "search_space",
    ]
    assert all(_options(group) for group in GROUPS)


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_config_option_composes_into_the_schema(group, option):
    run = run_config(f"{group}={option}")
    if group in ("model", "optim"):  # their name: is the option's name
        assert getattr(run, group).name == option


def test_default_run_is_a_short_nac_on_digits():
    run = run_config()
    assert (run.algo.name, run.algo.iterations, run.dataset.name) == ("nac", 2, "digits")
    assert (run.model.name, run.optim.name, run.seed, run.spec) == ("envelopenet", "amla", 0, None)
    assert (run.train.steps, run.train.batch_size) == (150, 50)


def test_algo_options():
    nac, quick, worst = run_config("algo=nac"), run_config(), run_config("algo=nac_worst")
    assert (nac.algo.name, nac.algo.iterations, quick.algo.iterations) == ("nac", 5, 2)
    # AMLA's config.nac.construction.json settings (amla_spec.md A.9a).
    assert nac.algo.options["layers_per_stage"] == [2, 2, 2]
    assert nac.algo.options["max_layers_per_stage"] == [7, 6, 2]
    assert nac.algo.options["construction"] == [True, True, False]
    assert nac.algo.options["max_filter_prune"] == 6 and nac.algo.options["skip"] is True
    assert len(nac.algo.options["envelopecell"]) == 6
    assert quick.algo.options == nac.algo.options
    assert (worst.algo.name, worst.algo.iterations) == ("nac_worst", 5)
    assert worst.algo.options == {**nac.algo.options, "worst_case": True}
    random = run_config("algo=random")
    assert (random.algo.name, random.algo.iterations) == ("random", 5)
    assert random.algo.options["blocks"] == ["3x3", "3x3sep", "5x5", "5x5sep", "7x7", "7x7sep"]
    fixed = run_config("algo=fixed")
    assert (fixed.algo.name, fixed.algo.iterations, fixed.algo.options) == ("fixed", 1, {})


def test_optim_amla_is_amlas_recipe():
    optim = run_config("optim=amla").optim
    assert (optim.optimizer, optim.momentum, optim.nesterov) == ("momentum", 0.9, True)
    assert (optim.learning_rate, optim.schedule) == (0.04, "exponential")
    assert (optim.decay_rate, optim.decay_epochs, optim.staircase) == (0.999, 2.0, True)
    assert (optim.l2, optim.clip_norm, optim.ema_decay) == (3e-4, 5.0, 0.9999)


def test_optim_nb201_is_nas_bench_201s_recipe():
    # configs/nas-benchmark/hyper-opts/200E.config; PyTorch's decay 5e-4 is our l2 2.5e-4.
    optim = run_config("optim=nb201").optim
    assert (optim.optimizer, optim.momentum, optim.learning_rate) == ("nesterov", 0.9, 0.1)
    assert (optim.schedule, optim.min_learning_rate, optim.warmup_epochs) == ("cosine", 0.0, 0.0)
    assert (optim.l2, optim.clip_norm, optim.global_clip_norm, optim.ema_decay) == (
        2.5e-4,
        None,
        None,
        0.0,
    )
    train = run_config("experiment=nb201_cifar10").train
    assert (train.batch_size, train.epochs) == (256, 200)


def test_dataset_names():
    names = {option: run_config(f"dataset={option}").dataset.name for option in _options("dataset")}
    assert names == {
        "cifar10": "cifar10",
        "cifar100": "cifar100",
        "digits": "digits",
        "fashion_mnist": "fashion_mnist",
        "imagenet": "imagenet2012",
        "mnist": "mnist",
        "synthetic": "synthetic",
    }


@pytest.mark.parametrize("option", _options("model"))
def test_every_model_network_is_a_valid_spec(option):
    network = json.loads(
        json.dumps(OmegaConf.to_container(compose_config([f"model={option}"]).model.network))
    )
    spec = NetworkSpec.from_json(network)
    assert spec.to_json()["arch"]["type"] in BODY_TYPES


# experiment -> (model, optim, dataset name, batch size) it picks.
EXPERIMENTS = {
    "amoebanet_b_cifar10": ("amoebanet_b", "amoebanet", "cifar10", 128),
    "darts_v2_cifar10": ("darts_v2", "darts", "cifar10", 96),
    "enas_macro_cifar10": ("enas_macro", "enas_macro", "cifar10", 100),
    "enas_micro_cifar10": ("enas_micro", "enas_micro", "cifar10", 144),
    "nac_cifar10_final": ("nac_cifar10", "nac_final", "cifar10", 128),
    "nac_imagenet_final": ("nac_imagenet", "nac_imagenet", "imagenet2012", 256),
    "nb201_cifar10": ("nb201", "nb201", "cifar10", 256),
}


# one-shot search experiment -> (algo, search space, dataset name, epochs, batch size).
SEARCH_EXPERIMENTS = {
    "darts_search_cifar10": ("darts", "darts", "cifar10", 50, 64),
    "enas_search_cifar10": ("enas", "darts", "cifar10", 150, 160),
}


def test_every_experiment_is_listed_here():
    assert sorted({**EXPERIMENTS, **SEARCH_EXPERIMENTS}) == _options("experiment")


@pytest.mark.parametrize("experiment, picks", sorted(SEARCH_EXPERIMENTS.items()))
def test_search_experiments_run_a_paper_scale_one_shot_search(experiment, picks):
    run = run_config(f"experiment={experiment}")
    options = run.algo.options
    got = (run.algo.name, options["space"], run.dataset.name, options["epochs"])
    assert (*got, options["batch_size"]) == picks


def test_darts_search_cifar10_is_the_papers_search():
    run = run_config("experiment=darts_search_cifar10")
    options = run.algo.options
    assert (run.algo.name, run.dataset.name, options["space"]) == ("darts", "cifar10", "darts")
    assert (options["epochs"], options["batch_size"], options["order"]) == (50, 64, 1)
    assert (options["supernet"]["channels"], options["supernet"]["layers"]) == (16, 8)
    assert (options["w_lr"], options["w_lr_min"], options["alpha_lr"]) == (0.025, 0.001, 3e-4)


@pytest.mark.parametrize("experiment, picks", sorted(EXPERIMENTS.items()))
def test_experiments_train_one_paper_network(experiment, picks):
    run = run_config(f"experiment={experiment}")
    assert run.algo.name == "fixed" and run.algo.iterations == 1
    assert (run.model.name, run.optim.name, run.dataset.name, run.train.batch_size) == picks
    assert run.train.epochs > 0 or run.train.steps > 150  # a full training, not the default


def test_debug_smoke_shrinks_any_run():
    run = run_config("algo=nac", "debug=smoke")
    assert (run.algo.iterations, run.train.steps, run.train.batch_size) == (2, 4, 16)
    assert run.train.progress is False


def test_model_on_dataset_adapts_the_stem():
    pairs = {f"{m}_{d}" for m in _options("model") for d in _options("dataset")}
    assert set(_options("model_on_dataset")) <= pairs  # each adapts an existing model+dataset
    stem = yaml.safe_load((CONF / "model" / "envelopenet.yaml").read_text())["network"]["stem"]
    assert run_config("dataset=cifar10").model.network["stem"] == stem  # 64 wide
    assert run_config("dataset=digits").model.network["stem"][0][0]["outputs"] == 16


@pytest.mark.parametrize(
    "override",
    [
        "train.stepz=5",
        "algo.iteration=3",
        "optim.lr=0.1",
        "dataset.imagesize=28",
        "model.netwrok=null",
        "seeds=1",
    ],
)
def test_an_unknown_key_is_rejected(override):
    with pytest.raises(ValueError, match=override.split("=")[0].split(".")[-1]):
        compose_config([override, "run_dir=."])


def test_a_wrongly_typed_value_and_an_unknown_option_are_rejected():
    with pytest.raises(ValueError, match="train.steps"):
        compose_config(["train.steps=many", "run_dir=."])
    with pytest.raises(ValueError, match="rmsprop"):
        compose_config(["optim=rmsprop", "run_dir=."])


def test_search_space_and_evaluator_groups_fill_the_space_search():
    run = run_config("algo=evolution", "search_space=nb201", "evaluator=tabular")
    assert (run.algo.name, run.algo.iterations) == ("evolution", 300)
    assert run.algo.options["space"] == "nb201" and run.algo.options["population"] == 20
    assert (run.evaluator.name, run.evaluator.column) == ("tabular", "baseline_accuracy")
    assert run_config().evaluator.name == "train"


def test_debug_smoke_trains_fixed_once_and_keeps_two_iterations_elsewhere():
    assert compose_config(["algo=fixed", "debug=smoke"]).algo.iterations == 1
    for algo in ("nac", "random", "nac_worst"):
        assert compose_config([f"algo={algo}", "debug=smoke"]).algo.iterations == 2
    assert compose_config(["algo=fixed", "debug=smoke", "algo.iterations=3"]).algo.iterations == 3
