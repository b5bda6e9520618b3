"""NetworkSpec: AMLA's configs load and round-trip; bad specs name the bad field."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import AMLA_EXAMPLES, TINY_NETWORK, amla_config_paths

from amla_jax.amla import load_spec, save_spec, spec_from_json, to_amla
from amla_jax.amla.envelope import EnvelopeSettings, initial_envelopenet
from amla_jax.spec import NetworkSpec, SpecError


def test_reference_folder_has_configs():
    names = {p.name for p in amla_config_paths()}
    assert {
        "config.run.json",
        "config.nac.final.json",
        "config.nac.construction.json",
        "config.micro.json",
    } <= names


@pytest.mark.parametrize("path", amla_config_paths(), ids=lambda p: p.name)
def test_every_amla_network_config_loads_and_round_trips(path):
    config = json.loads(path.read_text())
    spec = spec_from_json(config)  # a construction config: its initial EnvelopeNet
    if "arch" not in config:
        settings = EnvelopeSettings.from_dict(config["envelopenet"], stem_width=spec.stem_width)
        assert spec.body.to_json()["network"] == initial_envelopenet(settings)
        config["arch"] = {"type": "macro", "network": initial_envelopenet(settings)}
    assert hash(spec) == hash(spec_from_json(config))
    ours = json.loads(json.dumps(spec.to_json()))
    assert NetworkSpec.from_json(ours) == spec
    amla = json.loads(json.dumps(to_amla(spec)))
    assert spec_from_json(amla) == spec
    assert amla["arch"]["type"] == config["arch"].get("type", "macro")


def test_macro_round_trip_keeps_amla_entries_verbatim():
    config = json.loads((AMLA_EXAMPLES / "config.nac.final.json").read_text())
    spec = spec_from_json(config)
    assert to_amla(spec)["arch"]["network"] == config["arch"]["network"]
    assert spec.stem_width == 128


def test_save_and_load_both_formats(tmp_path, tiny_spec):
    for amla in (True, False):
        path = tmp_path / f"spec_{amla}.json"
        save_spec(tiny_spec, path, amla=amla)
        assert load_spec(path) == tiny_spec


def _broken(mutate) -> dict:
    data = copy.deepcopy(TINY_NETWORK)
    mutate(data)
    return data


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d["arch"]["network"][0]["filters"].update(Branch9="9x8"), "Branch9"),
        (lambda d: d["arch"]["network"][0].update(widener={}), "has both"),
        (lambda d: d["arch"]["network"][2].update(inputs=[3]), "network[2]"),
        (lambda d: d["arch"]["network"][2].update(inputs=[1, 1]), "twice"),
        (lambda d: d["arch"]["network"][0].update(outputs=1), "outputs"),
        (lambda d: d["arch"]["network"][0].update(outputs=-4), "outputs"),
        (lambda d: d["arch"].update(type="meso"), "arch.type"),
        (lambda d: d["arch"].update(network=[]), "arch.network"),
        (lambda d: d["stem"][0][0].update(block="conv3d"), "stem[0][0].block"),
        (lambda d: d["head"].pop(), "head"),
        (lambda d: d.pop("arch"), "arch"),
    ],
)
def test_bad_specs_name_the_field(mutate, field):
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        NetworkSpec.from_json(_broken(mutate))


def test_load_spec_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for path in (bad, tmp_path / "missing.json"):
        with pytest.raises(SpecError) as info:
            load_spec(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
