"""The tabular evaluator: the analog-nasbench encoding, checked by invariants on the data."""

import itertools
import json

import jax
import numpy as np
import pytest

pytest.importorskip("analognasbench")

from amla_jax.evaluators import get_evaluator  # noqa: E402
from amla_jax.evaluators.tabular import (  # noqa: E402
    ACCURACY_COLUMNS,
    TabularError,
    load_table,
    package_arch,
    row,
)
from amla_jax.spaces import get_space  # noqa: E402
from amla_jax.spaces.nb201 import OPS, connected  # noqa: E402

NONE = OPS.index("none")
ALL = list(itertools.product(range(len(OPS)), repeat=6))


@pytest.fixture(scope="module")
def table():
    return load_table()  # converted once into the cache (~/.cache/amla_jax), then read


def test_the_cached_table_equals_a_fresh_conversion(table, tmp_path, monkeypatch):
    monkeypatch.setenv("AMLA_JAX_CACHE", str(tmp_path))
    fresh = load_table()
    assert list(tmp_path.glob("analog_nasbench-*.npz"))
    np.testing.assert_array_equal(fresh.values, table.values)
    assert load_table().columns == fresh.columns


def test_rows_are_one_per_arch(table):
    assert table.values.shape[0] == len(ALL) == 5**6
    assert sorted(row(a) for a in ALL) == list(range(len(ALL)))
    assert len({package_arch(a) for a in ALL}) == len(ALL)


def test_the_all_none_cell_scores_chance(table):
    for column in ("baseline_accuracy", "ptq_accuracy", "qat_accuracy"):
        assert table.query((NONE,) * 6, column) == pytest.approx(0.10)


def test_disconnected_cells_and_only_they_score_chance(table):
    baseline = table.values[:, table.column("baseline_accuracy")]
    disconnected = np.array([not connected(a) for a in ALL])
    order = np.array([row(a) for a in ALL])
    assert disconnected.sum() > 300
    np.testing.assert_allclose(baseline[order[disconnected]], 0.10)
    assert baseline[order[~disconnected]].min() > 0.11
    for column in ACCURACY_COLUMNS:  # the analog columns are noisy around chance
        values = table.values[order[disconnected], table.column(column)]
        assert np.all(np.abs(values - 0.10) < 0.005), column


def test_conv_cells_beat_pool_cells(table):
    conv3 = table.query((OPS.index("nor_conv_3x3"),) * 6, "baseline_accuracy")
    pool = table.query((OPS.index("avg_pool_3x3"),) * 6, "baseline_accuracy")
    assert conv3 > 0.9 > pool


def test_evaluator_answers_a_spec_with_the_column(table):
    space = get_space("nb201")()
    evaluate = get_evaluator("tabular")(column="analog_accuracy")
    arch = (3, 3, 3, 3, 3, 3)
    result = evaluate(space.to_spec(arch, None), jax.random.key(0), 0)
    assert result.metrics["validation/accuracy"] == pytest.approx(
        table.query(arch, "analog_accuracy")
    )
    assert result.train_seconds == result.compile_seconds == 0
    assert "analog_accuracy" in result.source
    json.dumps(result.metrics)
    with pytest.raises(TabularError, match="evaluator.column: unknown 'nope'"):
        get_evaluator("tabular")(column="nope")
