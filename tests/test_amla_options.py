"""Tests for amla_jax.amla.options: typed algo.options, validated once, naming the key."""

import dataclasses
import subprocess
import sys

import pytest
from conftest import ROOT
from fakes import AMLA_SECTION

from amla_jax.amla.options import NacOptions, OptionsError, RandomOptions
from amla_jax.errors import UserError


def test_nac_defaults_are_amlas_construction_settings():
    assert NacOptions().to_dict() == AMLA_SECTION
    assert NacOptions.from_config({}) == NacOptions.from_config(AMLA_SECTION) == NacOptions()
    assert NacOptions.keys() == tuple(AMLA_SECTION)
    assert RandomOptions.amla_keys() == (
        "stages",
        "layers_per_stage",
        "num_blocks_per_stage",
        "blocks",
        "parameter_limits",
        "skip",
    )


def test_options_are_frozen_hashable_and_normalised():
    options = NacOptions.from_config({"stages": 2, "max_filter_prune": 4})
    assert options.layers_per_stage == (2, 2)  # cut to `stages` entries, as AMLA reads it
    assert options.max_filter_prune == 4 and hash(options) == hash(NacOptions(**vars(options)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.stages = 3
    assert NacOptions.from_config(options) is options
    settings = options.settings(16, worst_case=True)
    assert settings.stem_width == 16 and settings.worst_case and not options.worst_case
    random = RandomOptions.from_config({"layers_per_stage": [2, 1], "num_blocks_per_stage": [3, 2]})
    assert random.layers_per_stage == (2, 1) and random.blocks[0] == "1x1" and random.skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"blocks": ["3x3"]}, r"algo\.options\.blocks: unknown for nac"),  # unknown key
        ({"stages": "3"}, r"algo\.options\.stages: stages must be an int >= 1"),  # bad type
        ({"stages": 0}, r"algo\.options\.stages: "),  # out of range
        ({"layers_per_stage": [2, 2]}, r"algo\.options\.layers_per_stage: .*one entry per stage"),
        ({"layers_per_stage": [2, 0, 2]}, r"algo\.options\.layers_per_stage: .*>= 1"),
        ({"construction": [1, 1, 0]}, r"algo\.options\.construction: .*bools"),
        ({"max_filter_prune": -1}, r"algo\.options\.max_filter_prune: "),
        ({"max_filter_prune": True}, r"algo\.options\.max_filter_prune: "),
        ({"envelopecell": {"b1": "1x1"}}, r"algo\.options\.envelopecell: "),
        ({"envelopecell": ["1x1"]}, r"algo\.options\.envelopecell: "),
        ({"skip": "yes"}, r"algo\.options\.skip: "),
        (["stages"], r"algo\.options: must be a mapping"),
    ],
)
def test_bad_nac_options_name_the_key(options, message):
    with pytest.raises(OptionsError, match=f"^{message}"):
        NacOptions.from_config(options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_filter_prune": 3}, r"algo\.options\.max_filter_prune: unknown for random"),
        ({"stages": 0}, r"algo\.options\.stages: "),
        ({"layers_per_stage": [1], "num_blocks_per_stage": [1.5]}, r"algo\.options\.num_blo"),
        ({"layers_per_stage": [1]}, r"algo\.options\.num_blocks_per_stage: give both"),
        ({"num_blocks_per_stage": [1]}, r"algo\.options\.layers_per_stage: give both"),
        ({"blocks": "3x3"}, r"algo\.options\.blocks: must be a list of strs"),
        ({"blocks": []}, r"algo\.options\.blocks: must name at least one op"),
        ({"parameter_limits": [0]}, r"algo\.options\.parameter_limits: must be a list of bools"),
        ({"skip": 1}, r"algo\.options\.skip: must be true or false"),
        ({"match": "a.json", "stages": 2}, r"algo\.options\.match: .*drop \['stages'\]"),
    ],
)
def test_bad_random_options_name_the_key(options, message):
    with pytest.raises(OptionsError, match=f"^{message}"):
        RandomOptions.from_config(options)


def test_options_errors_are_user_errors_of_one_line():
    assert issubclass(OptionsError, UserError)
    with pytest.raises(UserError) as caught:
        NacOptions.from_config({"layers_per_stage": "2"})
    assert "\n" not in str(caught.value)


def test_options_and_the_amla_config_mapping_import_without_jax():
    code = (
        "import sys; import amla_jax.amla.options, amla_jax.amla.task_config; "
        "heavy = sorted(m for m in ('jax', 'flax', 'optax') if m in sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
