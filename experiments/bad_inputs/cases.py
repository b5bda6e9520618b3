"""The bad inputs of run.py: each a `Case` (entry point, arguments, files to set up).

``{dir}`` in an argument is the case's scratch directory (also its working directory).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "amla"
RUN = json.loads((EXAMPLES / "config.run.json").read_text())
NAC = json.loads((EXAMPLES / "config.nac.construction.json").read_text())
SMOKE = ["debug=smoke", "train.steps=1"]


@dataclass
class Case:
    label: str
    tool: str  # main | amla | report
    args: tuple[str, ...]
    setup: Callable | None = None
    needs_run: bool = False
    keeps_run_dir: bool = False
    index: int = 0


def write(name: str, text: str | bytes) -> Callable:
    def setup(scratch: Path, shared: dict) -> None:
        path = scratch / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)

    return setup


def edited(base: dict, edit: Callable[[dict], None]) -> str:
    data = copy.deepcopy(base)
    edit(data)
    return json.dumps(data)


def setter(path: str, value) -> Callable[[dict], None]:
    """Sets ``a.b.0.c`` (ints index lists) to ``value``; ``value`` DELETE removes it."""

    def edit(data: dict) -> None:
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        node = data
        for key in keys[:-1]:
            node = node[key]
        if value is DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return edit


DELETE = object()
CASES: list[Case] = []


def main(label: str, *args: str, **kw) -> None:
    CASES.append(Case(label, "main", tuple(args) if args else (label,), **kw))


def spec(label: str, text: str | bytes, *extra: str) -> None:
    """A bad spec file through ``python -m amla_jax algo=fixed spec=<file>``."""
    CASES.append(
        Case(
            f"spec: {label}",
            "main",
            ("algo=fixed", "spec=bad.json", *SMOKE, *extra),
            setup=write("bad.json", text),
        )
    )


def amla_config(label: str, text: str | bytes) -> None:
    """A bad AMLA task config through ``amla add <file>``."""
    CASES.append(
        Case(
            f"amla add <config: {label}>",
            "amla",
            ("add", "bad.json"),
            setup=write("bad.json", text),
        )
    )


# --- 1. command-line overrides of python -m amla_jax -----------------------------------
for override in [
    "+foo=bar", "++foo=bar", "+train.zzz=1", "+optim.momentun=0.5", "foo=bar", "train.stepz=5",
    "train.steps=0", "train.steps=-1", "train.steps=99999999999999999999",
    "train.steps=3000000000", "train.steps=abc", "train.steps=1.5", "train.epochs=-1",
    "train.epochs=nan", "train.batch_size=0", "train.batch_size=-5",
    "train.batch_size=100000000", "train.eval_batch_size=0", "train.eval_every=-1",
    "train.log_every=-1", "train.bn_calibration_batches=-1", "train.progress=maybe",
    "optim.learning_rate=0", "optim.learning_rate=-1", "optim.learning_rate=nan",
    "optim.learning_rate=inf", "optim.learning_rate=abc", "optim.clip_norm=-1",
    "optim.clip_norm=0", "optim.global_clip_norm=-1", "optim.momentum=-0.5",
    "optim.momentum=1.5", "optim.ema_decay=1", "optim.ema_decay=-0.1", "optim.l2=-1",
    "optim.weight_decay=-1", "optim.label_smoothing=1.5", "optim.label_smoothing=-0.1",
    "optim.drop_path=1", "optim.optimizer=foo", "optim.schedule=foo", "optim.decay_rate=0",
    "optim.decay_epochs=0", "optim.warmup_epochs=-1", "optim.b1=1", "optim.aux_weight=-1",
    "optim.sgdr_t0=0", "optim.sgdr_t_mul=0", "optim.min_learning_rate=-1",
    "algo.iterations=0", "algo.iterations=-1", "algo=nope", "dataset=nope", "model=nope",
    "optim=nope", "debug=nope", "experiment=nope", "seed=abc", "seed=-1",
    "seed=99999999999999999999", "dataset.validation_size=-1",
    "model.network.head.3.outputs=1000000000000", "model.network.head.3.outputs=0",
    "model.network.stem.0.0.kernel_size=abc", "model.network.arch.network.0.outputs=-64",
]:  # fmt: skip
    main(override, *SMOKE, override)  # last, so that SMOKE cannot override it
main("spec=missing.json", "algo=fixed", "spec=missing.json", *SMOKE)
main(
    "hydra.run.dir=<an existing file>",
    "algo=fixed",
    *SMOKE,
    setup=write("run", "not a directory"),
    keeps_run_dir=True,
)
main(
    "hydra.run.dir=<a path under a file>",
    "algo=fixed",
    *SMOKE,
    "hydra.run.dir={dir}/file/run",
    setup=write("file", "x"),
)

# --- 2. spec files (ours and AMLA's task configs) --------------------------------------
spec("not JSON", "{ not json")
spec("empty file", "")
spec("binary file", bytes(range(256)) * 4)
spec("UTF-16 file", json.dumps(RUN).encode("utf-16"))
spec("JSON nested 100,000 deep", "[" * 100_000 + "]" * 100_000)
spec("a JSON list", "[1, 2, 3]")
spec("a JSON string", '"config"')
spec("arch missing", edited(RUN, setter("arch", DELETE)))
spec("arch is a string", edited(RUN, setter("arch", "macro")))
spec('branch_dropout: "abc"', edited(RUN, setter("arch.branch_dropout", "abc")))
spec("branch_dropout: 1.5", edited(RUN, setter("arch.branch_dropout", 1.5)))
spec('stem kernel_size: "abc"', edited(RUN, setter("init_cell.Layer0.Branch0.kernel_size", "abc")))
spec(
    "stem kernel_size: [-3, -3]",
    edited(RUN, setter("init_cell.Layer0.Branch0.kernel_size", [-3, -3])),
)
spec(
    "stem kernel_size: [0, 0]", edited(RUN, setter("init_cell.Layer0.Branch0.kernel_size", [0, 0]))
)
spec("stem outputs: 10**12", edited(RUN, setter("init_cell.Layer0.Branch0.outputs", 10**12)))
spec('stem outputs: "64"', edited(RUN, setter("init_cell.Layer0.Branch0.outputs", "64")))
spec("stem stride: 0", edited(RUN, setter("init_cell.Layer0.Branch0.stride", 0)))
spec(
    "head fc-final outputs: 10**12",
    edited(RUN, setter("classification_cell.Layer3.Branch0.outputs", 10**12)),
)
spec(
    "head fc-final outputs: -1",
    edited(RUN, setter("classification_cell.Layer3.Branch0.outputs", -1)),
)
spec(
    'head dropout keep_prob: "abc"',
    edited(RUN, setter("classification_cell.Layer2.Branch0.keep_prob", "abc")),
)
spec("head keep_prob: 0", edited(RUN, setter("classification_cell.Layer2.Branch0.keep_prob", 0)))
spec("layer outputs: 10**12", edited(RUN, setter("arch.network.0.outputs", 10**12)))
spec('layer outputs: "abc"', edited(RUN, setter("arch.network.0.outputs", "abc")))
spec(
    'op with full-width digits "３x３"',
    edited(RUN, setter("arch.network.0.filters.Branch1", "３x３")),
)
spec("op with Arabic-Indic digits", edited(RUN, setter("arch.network.0.filters.Branch1", "٣x٣")))
spec('op "3x5"', edited(RUN, setter("arch.network.0.filters.Branch1", "3x5")))
spec('op "99x99"', edited(RUN, setter("arch.network.0.filters.Branch1", "99x99")))
spec("op is a number", edited(RUN, setter("arch.network.0.filters.Branch1", 3)))
spec("inputs: [99]", edited(RUN, setter("arch.network.3.inputs", [99])))
spec('inputs: "abc"', edited(RUN, setter("arch.network.3.inputs", "abc")))
spec("unknown body type", edited(RUN, setter("arch.type", "mega")))
spec('"parameters": [1, 2]', edited(RUN, setter("parameters", [1, 2])))
spec('arch_name: ["a"]', edited(RUN, setter("parameters.arch_name", ["a"])))
spec("unknown stem block", edited(RUN, setter("init_cell.Layer0.Branch0.block", "conv9d")))
spec(
    "200,000 layers",
    json.dumps(
        {
            **RUN,
            "arch": {
                "type": "macro",
                "network": [{"filters": {"Branch1": "3x3"}, "outputs": 8}] * 200_000,
            },
        }
    ),
)
spec("our format, unknown version", json.dumps({"format": "amla_jax.spec/9", "arch": {}}))
spec(
    "ENAS channels: 10**12",
    json.dumps(
        {
            "format": "amla_jax.spec/1",
            "arch": {"type": "enas_macro", "channels": 10**12, "arc": "0"},
        }
    ),
)
spec(
    'ENAS arc: "a b c"',
    json.dumps(
        {
            "format": "amla_jax.spec/1",
            "arch": {"type": "enas_macro", "channels": 16, "arc": "a b c"},
        }
    ),
)
spec('envelopenet stages: "abc"', edited(NAC, setter("envelopenet.stages", "abc")), "algo=nac")
# parameter_limits on a stage of 2 layers is not here: amla_jax gives it a documented
# width rule (W // 2, amla_jax.amla.layout.stage_widths) where AMLA divides by zero.

# --- 3. AMLA task configs through amla add ---------------------------------------------
amla_config("not JSON", "{")
amla_config("binary", bytes(range(256)))
amla_config("a JSON list", "[]")
amla_config(
    'epochs_per_decay: "abc"',
    edited(
        NAC,
        setter(
            "child_training.lr",
            {"type": "exponential_decay", "initial": 0.1, "epochs_per_decay": "abc"},
        ),
    ),
)
amla_config("lr initial: -1", edited(NAC, setter("child_training.lr.initial", -1)))
amla_config('lr initial: "abc"', edited(NAC, setter("child_training.lr.initial", "abc")))
amla_config('momentum: "abc"', edited(NAC, setter("child_training.optimizer.momentum", "abc")))
amla_config(
    "gradient clipping value: -4", edited(NAC, setter("child_training.gradient_clipping.value", -4))
)
amla_config("l2 value: [1]", edited(NAC, setter("child_training.regularization.value", [1])))
amla_config("arch_name: [...]", edited(NAC, setter("parameters.arch_name", ["a", "b"])))
amla_config("iterations: -1", edited(NAC, setter("parameters.iterations", -1)))
amla_config('iterations: "abc"', edited(NAC, setter("parameters.iterations", "abc")))
amla_config("steps: -1", edited(NAC, setter("parameters.steps", -1)))
amla_config("steps: 10**20", edited(NAC, setter("parameters.steps", 10**20)))
amla_config("batch_size: 0", edited(NAC, setter("parameters.batch_size", 0)))
amla_config('mode: "fly"', edited(NAC, setter("parameters.mode", "fly")))
amla_config('algorithm: "magic"', edited(NAC, setter("parameters.algorithm", "magic")))
amla_config("parameters: [1, 2]", edited(NAC, setter("parameters", [1, 2])))
amla_config("child_training: []", edited(NAC, setter("child_training", [])))
amla_config("envelopenet: []", edited(NAC, setter("envelopenet", [])))
amla_config(
    "layers_per_stage: [-1, 2, 1]", edited(NAC, setter("envelopenet.layers_per_stage", [-1, 2, 1]))
)

# --- 4. amla add overrides, workspaces and the task store ------------------------------
for override in [
    "train.steps=-1",
    "optim.learning_rate=-1",
    "+foo=bar",
    "algo=nope",
    "spec=missing.json",
    "optim.clip_norm=0",
    "train.steps=99999999999999999999",
]:
    CASES.append(Case(f"amla add {override}", "amla", ("add", override)))


def _corrupt(scratch: Path, shared: dict) -> None:
    (scratch / "ws").mkdir()
    (scratch / "ws" / "tasks.db").write_bytes(b"this is not an SQLite database" * 100)


def _truncated(scratch: Path, shared: dict) -> None:
    (scratch / "ws").mkdir()
    db = sqlite3.connect(scratch / "ws" / "tasks.db")
    db.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, x TEXT)")
    db.executemany("INSERT INTO tasks (x) VALUES (?)", [("x" * 500,)] * 200)
    db.commit()
    db.close()
    data = (scratch / "ws" / "tasks.db").read_bytes()
    (scratch / "ws" / "tasks.db").write_bytes(data[: len(data) // 3])


def _read_only(scratch: Path, shared: dict) -> None:
    # chmod cannot make a directory read-only for root (CI and this machine run as root),
    # so the store is made unopenable as well: tasks.db is a directory.
    (scratch / "ws" / "tasks.db").mkdir(parents=True)
    os.chmod(scratch / "ws", 0o555)


CASES.append(Case("amla list (tasks.db is not a database)", "amla", ("list",), setup=_corrupt))
CASES.append(
    Case("amla add (tasks.db is not a database)", "amla", ("add", "algo=fixed"), setup=_corrupt)
)
CASES.append(Case("amla list (tasks.db truncated)", "amla", ("list",), setup=_truncated))
CASES.append(
    Case(
        "amla list --workspace <a file>",
        "amla",
        ("list", "--workspace", "afile"),
        setup=write("afile", "x"),
    )
)
CASES.append(
    Case(
        "amla add --workspace <under a file>",
        "amla",
        ("add", "--workspace", "afile/ws", "algo=fixed"),
        setup=write("afile", "x"),
    )
)
CASES.append(
    Case(
        "amla list --workspace /proc/amla_ws (cannot be created)",
        "amla",
        ("list", "--workspace", "/proc/amla_ws"),
    )
)
CASES.append(
    Case(
        "amla add (read-only workspace, tasks.db a directory)",
        "amla",
        ("add", "algo=fixed"),
        setup=_read_only,
    )
)
for args in [
    ("status", "999"),
    ("start", "999"),
    ("stop", "999"),
    ("logs", "999"),
    ("delete", "999"),
    ("status", "abc"),
    ("scheduler", "-j", "0", "--until-empty"),
    ("add", "--run-dir"),
    ("frobnicate",),
]:
    CASES.append(Case(f"amla {' '.join(args)}", "amla", args))
CASES.append(
    Case(
        "amla add hydra.run.dir=<a file>",
        "amla",
        ("add", "algo=fixed", "hydra.run.dir=afile"),
        setup=write("afile", "x"),
    )
)

# --- 5. report directories -------------------------------------------------------------
CASES.append(Case("report <a file>", "report", ("afile",), setup=write("afile", "x")))
CASES.append(
    Case("report <an empty dir>", "report", ("empty",), setup=lambda s, _: (s / "empty").mkdir())
)
CASES.append(Case("report <missing path>", "report", ("missing",)))
CASES.append(
    Case(
        "report <candidates.jsonl of garbage>",
        "report",
        ("r",),
        setup=write("r/candidates.jsonl", "garbage\n{\n"),
    )
)
CASES.append(
    Case(
        "report <binary candidates.jsonl>",
        "report",
        ("r",),
        setup=write("r/candidates.jsonl", bytes(range(256))),
    )
)
CASES.append(
    Case(
        "report <rows without metrics>",
        "report",
        ("r",),
        setup=write("r/candidates.jsonl", '{"id": 0}\n[1]\n"x"\n'),
    )
)
CASES.append(Case("amla report <a file>", "amla", ("report", "afile"), setup=write("afile", "x")))
CASES.append(
    Case(
        "report --columns nope",
        "report",
        ("r", "--columns", "nope"),
        setup=write("r/candidates.jsonl", ""),
    )
)


# --- 6. run directories (one finished tiny run, copied) --------------------------------
def _copy_finished(drop_candidates: bool) -> Callable:
    def setup(scratch: Path, shared: dict) -> None:
        shutil.copytree(shared["finished"], scratch / "run")
        if drop_candidates:
            (scratch / "run" / "candidates.jsonl").unlink()

    return setup


TINY = {
    "format": "amla_jax.spec/1",
    "stem": [[{"block": "conv2d", "kernel_size": [1, 1], "outputs": 4}]],
    "arch": {"type": "macro", "network": [{"filters": {"Branch1": "1x1"}, "outputs": 4}]},
    "head": [{"block": "reduce_mean"}, {"block": "fc-final", "outputs": 10}],
}
CASES.append(
    Case(
        "rerun a finished fixed run dir with algo=random",
        "main",
        ("algo=random", "spec={tiny}", *SMOKE),
        setup=_copy_finished(False),
        needs_run=True,
        keeps_run_dir=True,
    )
)
CASES.append(
    Case(
        "rerun a run dir whose checkpoints exist without candidates.jsonl",
        "main",
        ("algo=fixed", "spec={tiny}", *SMOKE, "train.bn_calibration_batches=0"),
        setup=_copy_finished(True),
        needs_run=True,
        keeps_run_dir=True,
    )
)

for i, case in enumerate(CASES):
    case.index = i
