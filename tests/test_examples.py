"""The AMLA-format networks in examples/amla/ are what the project's exporter writes now."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import AMLA_EXAMPLES

from amla_jax.amla import load_spec
from amla_jax.zoo import load_network


def _export_script():
    path = AMLA_EXAMPLES / "export.py"
    spec = importlib.util.spec_from_file_location("amla_examples_export", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPORT = _export_script()


def test_committed_files_equal_a_fresh_export(tmp_path):
    for path in EXPORT.export(tmp_path):
        committed = AMLA_EXAMPLES / path.name
        assert committed.is_file(), f"{committed} missing; run python examples/amla/export.py"
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale; run python examples/amla/export.py"
        )
    assert EXPORT.stale_files() == []


@pytest.mark.parametrize("filename, model", sorted(EXPORT.EXPORTS.items()))
def test_exported_file_is_the_model_config_network(filename, model):
    assert load_spec(AMLA_EXAMPLES / filename) == load_network(model)


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    EXPORT.export(tmp_path)
    (tmp_path / "config.run.json").write_text("{}\n")
    monkeypatch.setattr(EXPORT, "HERE", tmp_path)
    assert EXPORT.stale_files(tmp_path) == ["config.run.json"]
    assert EXPORT.main(["--check"]) == 1
    assert "config.run.json: stale" in capsys.readouterr().err
