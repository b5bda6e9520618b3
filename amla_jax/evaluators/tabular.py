"""The tabular evaluator: NB201 cells answered from the analog-nasbench table, no training.

``analog-nasbench`` (IBM, AnalogNAS-Bench; the optional extra ``tabular``) holds the
15,625 NAS-Bench-201 cells trained on CIFAR-10 for 200 epochs, with test accuracies
(percent) after baseline training, PTQ, QAT, noisy analog evaluation and hardware-aware
(analog) training, and accuracies after analog drift. It has no validation split: every
column is a test-set number, and ``validation/accuracy`` (the search's selection metric)
is the chosen column.

The package's architecture encoding, read from its generating code (IBM/analog-nas,
``analognasbench/training_script.py``: ``NasBench201SearchSpace().set_spec(arch)``, i.e.
NASLib's ``op_indices``, ``naslib/search_spaces/nasbench201/conversions.py``) and checked
on the data (tests/test_tabular.py):

- edge order (from -> to, nodes 0..3): 0->1, 0->2, 0->3, 1->2, 1->3, 2->3 (NASLib's
  ``EDGE_LIST`` ``(1,2),(1,3),(1,4),(2,3),(2,4),(3,4)``, 1-based), which is NOT the arch
  string's order (0->1, 0->2, 1->2, 0->3, 1->3, 2->3);
- op indices: 0 skip_connect, 1 none, 2 nor_conv_3x3, 3 nor_conv_1x1, 4 avg_pool_3x3
  (NASLib's ``OP_NAMES``: Identity, Zero, ReLUConvBN3x3, ReLUConvBN1x1, AvgPool1x1).

Checks on the data: the all-``none`` cell (1,1,1,1,1,1) scores exactly 10 % (chance);
every one of the 341 cells whose output is disconnected from the input scores 10 % in
the baseline column and no connected cell does. (The reversed edge order 2->3, 1->3,
0->3, 1->2, 0->2, 0->1 passes the connectivity check too, since reversing a DAG keeps
connectivity; the generating code decides between them.)

The table is converted once to ``<cache>/analog_nasbench-<version>.npz`` (``$AMLA_JAX_CACHE``
or ``~/.cache/amla_jax``, as for compiled programs): a (15625, columns) float32 array of
fractions whose row is the arch's base-5 number in our order (`amla_jax.spaces.nb201`), so
a query is index arithmetic.

Synopsis::

    from amla_jax.evaluators.tabular import load_table, make_tabular_evaluator
    table = load_table()                         # AnalogTable: .values, .columns
    table.query((3, 3, 3, 3, 3, 3), "analog_accuracy")      # a fraction, microseconds
    evaluate = make_tabular_evaluator(column="analog_accuracy")
    result = evaluate(spec, key, 0)              # result.metrics["validation/accuracy"]
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
from pathlib import Path

import numpy as np

from amla_jax.errors import UserError
from amla_jax.spaces.nb201 import EDGES, OPS

PACKAGE = "analog-nasbench"
INSTALL = 'pip install -e ".[tabular]"'
# The package's encoding (see the module docstring), as (to, from) edges and op names.
PACKAGE_EDGES = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))
PACKAGE_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
ACCURACY_COLUMNS = (
    "baseline_accuracy",
    "ptq_accuracy",
    "qat_accuracy",
    "noisy_accuracy",
    "analog_accuracy",
)
DRIFT_COLUMNS = tuple(
    f"{kind}_drift_{t}" for kind in ("baseline", "analog") for t in (60, 3600, 86400, 2592000)
)
COLUMNS = ACCURACY_COLUMNS + DRIFT_COLUMNS
# Our decision i is the package's position _TO_PACKAGE[i]; op j is the package's op _OP[j].
_TO_PACKAGE = tuple(PACKAGE_EDGES.index(edge) for edge in EDGES)
_OP = tuple(PACKAGE_OPS.index(op) for op in OPS)
_PLACE = 5 ** np.arange(len(EDGES) - 1, -1, -1)


class TabularError(UserError):
    """The table's package is missing, or a column or architecture it does not have."""


@dataclasses.dataclass(frozen=True)
class AnalogTable:
    """The converted table: ``values[row(arch), columns.index(name)]`` (fractions)."""

    values: np.ndarray
    columns: tuple[str, ...]
    version: str

    def column(self, name: str) -> int:
        if name not in self.columns:
            raise TabularError(
                f"evaluator.column: unknown {name!r}; valid: {', '.join(self.columns)}"
            )
        return self.columns.index(name)

    def query(self, arch, name: str) -> float:
        return float(self.values[row(arch), self.column(name)])


def row(arch) -> int:
    """The table row of ``arch`` (our NB201 decisions): its base-5 number."""
    return int(np.dot(np.asarray(arch), _PLACE))


def package_arch(arch) -> tuple[int, ...]:
    """``arch`` (our order) in the package's encoding."""
    out = [0] * len(EDGES)
    for i, op in enumerate(arch):
        out[_TO_PACKAGE[i]] = _OP[op]
    return tuple(out)


def _import_package():
    try:
        return importlib.import_module("analognasbench.data")
    except ImportError as exc:
        raise TabularError(
            f"evaluator=tabular needs the {PACKAGE} package ({exc}); {INSTALL}"
        ) from None


def cache_dir() -> Path | None:
    """``$AMLA_JAX_CACHE`` (empty: no cache) or ``~/.cache/amla_jax``."""
    directory = os.environ.get("AMLA_JAX_CACHE", str(Path.home() / ".cache/amla_jax"))
    return Path(directory) if directory else None


def convert(version: str) -> AnalogTable:
    """Reads the package's pickle (slow: ~1 s) into an `AnalogTable`."""
    bench = _import_package().AnalogNASBench()
    archs = np.array(list(np.ndindex(*(len(OPS),) * len(EDGES))))
    values = np.empty((len(archs), len(COLUMNS)), np.float32)
    for arch in archs:
        entry = bench.data[package_arch(arch)]
        for j, name in enumerate(COLUMNS):
            value = getattr(entry, name)
            values[row(arch), j] = getattr(value, "value", value) / 100.0
    return AnalogTable(values, COLUMNS, version)


def load_table() -> AnalogTable:
    """The table, from the cache's .npz when there is one (written on first use)."""
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        _import_package()  # raises the install hint
        version = "unknown"
    directory = cache_dir()
    path = None if directory is None else directory / f"analog_nasbench-{version}.npz"
    if path is not None and path.exists():
        with np.load(path) as data:
            return AnalogTable(data["values"], tuple(str(c) for c in data["columns"]), version)
    table = convert(version)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, values=table.values, columns=np.array(table.columns))
        tmp.replace(path)  # atomic: concurrent runs never read half a file
    return table


@dataclasses.dataclass(frozen=True)
class TabularResult:
    """What the search records of a table answer (no training: seconds are 0)."""

    metrics: dict
    source: str
    utilities: dict = dataclasses.field(default_factory=dict)
    scalars: dict = dataclasses.field(default_factory=dict)
    num_params: int = 0  # the table has no parameter counts
    steps: int = 0
    train_seconds: float = 0.0
    compile_seconds: float = 0.0
    flops: float | None = None


@dataclasses.dataclass(frozen=True)
class TabularEvaluator:
    """``evaluate(spec, key, candidate_id)`` for NB201 specs (see `make_tabular_evaluator`)."""

    table: AnalogTable
    column: str
    # A lookup takes microseconds and an Orbax save ~0.1 s: checkpoint the search every
    # 100 candidates (a resumed search redoes at most 99 lookups, identically).
    checkpoint_every: int = 100

    @property
    def source(self) -> str:
        return f"table:{PACKAGE}=={self.table.version}:{self.column}"

    def metrics(self, arch) -> dict[str, float]:
        values = self.table.values[row(arch)]
        chosen = float(values[self.table.column(self.column)])
        metrics = {"validation/accuracy": chosen, "test/accuracy": chosen}
        metrics.update(
            {f"table/{c}": float(v) for c, v in zip(self.table.columns, values, strict=False)}
        )
        return metrics

    def __call__(self, spec, key, candidate_id: int) -> TabularResult:
        del key, candidate_id  # a table answer is deterministic
        ops = getattr(spec.body, "ops", None)
        if ops is None or getattr(spec.body, "type", None) != "nb201":
            raise TabularError(
                f"evaluator=tabular answers NB201 cells only, not a {type(spec.body).__name__}; "
                "use search_space=nb201"
            )
        return TabularResult(self.metrics([OPS.index(op) for op in ops]), self.source)


def make_tabular_evaluator(column: str = "baseline_accuracy") -> TabularEvaluator:
    """The tabular evaluator answering ``column`` as ``validation/accuracy``.

    Raises:
      TabularError: the extra is not installed (the message names the install command),
        or ``column`` is not a column of the table.
    """
    table = load_table()
    table.column(column)
    return TabularEvaluator(table, column)
