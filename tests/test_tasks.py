"""Tests for amla_jax.tasks: the ``amla`` task CLI, its SQLite store and the scheduler.

Fast tests call ``main(argv)`` in-process on queued tasks (no run starts). The ``slow``
ones run real tasks (``python -m amla_jax`` on digits with test_search's tiny budget,
whose compiled programs the shared $AMLA_JAX_CACHE already holds) in the background
through ``python -m amla_jax.tasks.cli``, as a user would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from conftest import AMLA_EXAMPLES, AMLA_FIXTURES, ROOT, TINY_NETWORK, amla_config_paths
from test_search import TINY

from amla_jax.amla.task_config import (
    AmlaConfigError,
    AmlaConfigWarning,
    hydra_value,
    merge_overrides,
    override_key,
    overrides_from_amla,
)
from amla_jax.compose import compose_config
from amla_jax.rundir import read_candidates
from amla_jax.tasks import Scheduler, procs
from amla_jax.tasks.cli import main
from amla_jax.tasks.lifecycle import classify_exit, refresh
from amla_jax.tasks.store import FAILED, RUNNING, STOPPED, Task, TaskStore

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
CONSTRUCTION_TEST = AMLA_EXAMPLES / "config.nac.construction.json"
TASK = ["algo=nac", "dataset=digits", *TINY]  # test_search's tiny NAC run


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # for supervisors started in-process
    return tmp_path / "ws"


def cli(capsys, workspace: Path, *args) -> tuple[int, str, str]:
    """``amla --workspace WS ARGS`` in-process: (exit code, stdout, stderr)."""
    code = main(["--workspace", str(workspace), *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def amla(workspace: Path, *args, timeout: float = 900) -> subprocess.CompletedProcess:
    """``amla --workspace WS ARGS`` as its own process."""
    command = [sys.executable, "-m", "amla_jax.tasks.cli", "--workspace", str(workspace)]
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=workspace.parent,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_usage_error(code: int, err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], err


# --- AMLA config translation ------------------------------------------------------------


def test_construction_config_translates_to_nac_overrides():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every key of the reference config is handled
        overrides = overrides_from_amla(CONSTRUCTION_TEST)
    assert overrides[0] == f"spec={CONSTRUCTION_TEST.absolute()}"
    for expected in (
        "algo=nac",
        "algo.iterations=2",
        "++algo.options.layers_per_stage=[1,2,1]",
        "++algo.options.construction=[true,false,true]",
        "++algo.options.skip=true",
        "~algo.options.envelopecell",
        "train.steps=60",
        "train.batch_size=32",
        "dataset=cifar10",
        "optim=amla",
        "optim.optimizer=momentum",
        "optim.momentum=0.85",
        "optim.schedule=exponential",
        "optim.learning_rate=0.02",
        "optim.clip_norm=4.0",
        "optim.l2=0.0002",
    ):
        assert expected in overrides
    cfg = compose_config(merge_overrides(overrides, ["dataset=digits"]))
    assert cfg.algo.name == "nac" and cfg.algo.iterations == 2
    assert cfg.dataset.name == "digits" and cfg.train.steps == 60
    assert (
        dict(cfg.algo.options.envelopecell)
        == json.loads(CONSTRUCTION_TEST.read_text())["envelopenet"]["envelopecell"]
    )
    assert list(cfg.algo.options.max_layers_per_stage) == [3, 3, 2]
    assert cfg.optim.learning_rate == 0.02 and cfg.optim.l2 == 2e-4 and cfg.optim.nesterov


def test_an_envelopecell_with_fewer_branches_replaces_the_default(tmp_path):
    config = json.loads(CONSTRUCTION_TEST.read_text())
    config["envelopenet"]["envelopecell"] = {"Branch1": "1x1", "Branch2": "3x3"}
    path = tmp_path / "two_branches.json"
    path.write_text(json.dumps(config))
    cfg = compose_config(overrides_from_amla(path))
    assert dict(cfg.algo.options.envelopecell) == {"Branch1": "1x1", "Branch2": "3x3"}


@pytest.mark.parametrize("path", amla_config_paths(), ids=lambda p: p.name)
def test_every_reference_config_composes(path):
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        overrides = overrides_from_amla(path)
    cfg = compose_config(overrides)
    mode = json.loads(path.read_text())["parameters"]["mode"]
    assert cfg.algo.name == ("nac" if mode == "construct" else "fixed")
    assert cfg.spec == str(path.absolute())


def test_cosine_decay_becomes_sgdr_and_towers_warn():
    with pytest.warns(AmlaConfigWarning, match="3 towers"):
        overrides = overrides_from_amla(AMLA_FIXTURES / "config.micro.json")
    cfg = compose_config(overrides)
    assert cfg.optim.schedule == "sgdr" and cfg.optim.learning_rate == 0.03
    assert cfg.optim.min_learning_rate == 0.0005 and cfg.optim.sgdr_t0 == 40.0
    assert cfg.train.batch_size == 48 and cfg.algo.name == "fixed"


def test_unsupported_settings_warn_and_bad_ones_fail(tmp_path):
    config = json.loads((AMLA_FIXTURES / "config.run.small.json").read_text())
    config["parameters"].update(dataset="svhn", shuffle=True)
    config["child_training"]["optimizer"] = {"type": "rms"}
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(config))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        overrides = overrides_from_amla(path)
    messages = " | ".join(str(w.message) for w in caught)
    assert "'svhn'" in messages and "'shuffle'" in messages and "'rms'" in messages
    assert "gpus" not in messages and "image_size" not in messages  # ignored quietly
    assert not any(o.startswith(("dataset=", "optim.optimizer=")) for o in overrides)
    config["parameters"] = {"mode": "evaluate"}
    path.write_text(json.dumps(config))
    with pytest.raises(AmlaConfigError, match="parameters.mode: 'evaluate'"):
        overrides_from_amla(path)
    path.write_text("[1, 2]")
    with pytest.raises(AmlaConfigError, match="JSON object"):
        overrides_from_amla(path)


def test_override_helpers():
    assert hydra_value({"Branch1": "1x1", "on": True, "x": [1, 2.5, None]}) == (
        "{Branch1:'1x1',on:true,x:[1,2.5,null]}"
    )
    assert hydra_value("/a/b-c.json") == "/a/b-c.json"
    assert hydra_value("a b's") == "'a b\\'s'" and hydra_value("true") == "'true'"
    assert [override_key(o) for o in ("+a.b=1", "~c", "++d=2", "optim=x")] == [
        "a.b",
        "c",
        "d",
        "optim",
    ]
    assert merge_overrides(["dataset=cifar10", "train.steps=40"], ["dataset=digits"]) == [
        "train.steps=40",
        "dataset=digits",
    ]


# --- the store and the CLI on queued tasks ----------------------------------------------


def test_add_list_status_delete_in_process(workspace, capsys):
    code, out, err = cli(capsys, workspace, "add", CONSTRUCTION_TEST, "dataset=digits")
    assert code == 0 and err == "" and out.startswith("task 1 queued: nac")
    code, out, _ = cli(capsys, workspace, "add", "algo=random", "dataset=digits", "--json")
    task = json.loads(out)
    assert task["id"] == 2 and task["state"] == "queued" and task["algo"] == "random"
    assert task["run_dir"] == str(workspace / "runs" / "2")
    code, out, _ = cli(capsys, workspace, "list")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["id", "name", "state", "algo"]
    assert lines[1].split()[:5] == ["1", "fixture-construct", "queued", "nac", "0/2"]
    code, out, _ = cli(capsys, workspace, "status", "1", "--json")
    status = json.loads(out)
    copy = workspace / "tasks" / "1" / CONSTRUCTION_TEST.name
    assert status["amla_config"] == str(copy) and copy.read_text() == CONSTRUCTION_TEST.read_text()
    assert f"spec={copy}" in status["overrides"] and status["overrides"][-1] == "dataset=digits"
    assert status["completed"] == 0 and status["total"] == 2 and status["best_val"] is None
    code, out, _ = cli(capsys, workspace, "stop", "2")
    assert code == 0 and "task 2 stopped" in out
    assert cli(capsys, workspace, "delete", "1")[0] == 0
    assert not copy.exists()
    code, out, _ = cli(capsys, workspace, "list", "--json")
    assert [t["id"] for t in json.loads(out)] == [2]
    code, out, _ = cli(capsys, workspace, "add", "dataset=digits", "hydra.run.dir=shared")
    task = json.loads(cli(capsys, workspace, "status", "3", "--json")[1])
    assert task["run_dir"] == str(workspace.parent / "shared")  # ids are not reused
    assert not any(o.startswith("hydra.run.dir") for o in task["overrides"])


def test_two_tasks_never_run_in_one_run_dir(workspace, capsys):
    store = TaskStore(workspace)
    with store.transaction():  # a task "running" in this very process
        first = store.insert(["dataset=digits"], cwd=workspace, run_dir=workspace / "run")
        store.update(first.id, state=RUNNING, supervisor_pid=os.getpid(), started=time.time())
        second = store.insert(["seed=1"], cwd=workspace, run_dir=workspace / "run")
    code, _, err = cli(capsys, workspace, "start", second.id)
    assert_usage_error(code, err, f"task {first.id} is running in")
    assert store.get(second.id).state == "queued"


def test_bad_input_is_a_one_line_usage_error(workspace, capsys, tmp_path):
    assert_usage_error(*cli(capsys, workspace, "status", "7")[::2], "no task 7")
    for command in ("start", "stop", "logs", "delete"):
        assert_usage_error(*cli(capsys, workspace, command, "7")[::2], "no task 7")
    assert_usage_error(
        *cli(capsys, workspace, "add", "algo=evolutionary")[::2], "algo/evolutionary"
    )
    assert_usage_error(*cli(capsys, workspace, "add", "train.stepz=3")[::2], "train.stepz")
    assert_usage_error(*cli(capsys, workspace, "add", "missing.json")[::2], "cannot read")
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"parameters": {"mode": "construct", "algorithm": "bayes"}, "x": 1}))
    code, _, err = cli(capsys, workspace, "add", odd)
    assert err.splitlines() == [
        "warning: top-level key 'x': not supported; ignored",
        f"error: AMLA config {str(odd)!r}: parameters.algorithm: 'bayes' is not supported; "
        "use envelopenet, random or deterministic",
    ]
    bad = tmp_path / "bad.json"
    bad.write_text('{"parameters": ')
    assert_usage_error(*cli(capsys, workspace, "add", bad)[::2], "not valid JSON")
    assert_usage_error(*cli(capsys, workspace, "add", "algo=fixed", f"spec={bad}")[::2], "bad.json")
    assert cli(capsys, workspace, "list", "--json")[1].strip() == "[]"  # nothing was added
    with pytest.raises(SystemExit) as exit_info:
        main(["start", "not-a-number"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    "command", ["add", "list", "start", "stop", "status", "logs", "delete", "scheduler"]
)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and "usage: amla" in capsys.readouterr().out


def test_report_is_dispatched_lazily(monkeypatch, capsys):
    seen = []
    fake = type(sys)("amla_jax.report")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "amla_jax.report", fake)
    assert main(["report", "runs/1", "--format", "md"]) == 0
    assert seen == [["runs/1", "--format", "md"]]
    monkeypatch.setitem(sys.modules, "amla_jax.report", None)  # as if it did not exist
    assert main(["report"]) == 1
    assert capsys.readouterr().err.startswith("error: amla report is not available")


# --- processes ---------------------------------------------------------------------------


def test_a_process_is_named_by_pid_and_start_time():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    started = procs.start_time(child.pid)
    assert procs.is_alive(child.pid, started)
    assert not procs.is_alive(child.pid, started + 1)  # a recycled PID
    child.kill()
    time.sleep(0.5)
    assert not procs.is_alive(child.pid, started)  # a zombie (not reaped yet) is dead
    child.wait()
    assert procs.describe_exit(procs.exit_status(child.returncode)) == "killed by SIGKILL"


def test_exits_are_classified(workspace):
    store = TaskStore(workspace)
    with store.transaction():
        task = store.insert(["dataset=digits"], cwd=workspace)
    earlier = "an earlier start\nerror: train.steps: -1 is out of range\n"
    log = workspace / "log.txt"
    log.write_text(earlier + "Traceback (most recent call last):\nValueError: boom\n")
    assert classify_exit(task, 0, log, 0)[0] == "complete"
    assert classify_exit(task, 143, log, 0)[0] == STOPPED
    assert classify_exit(task, 137, log, 0) == (FAILED, "killed by SIGKILL; amla start resumes it")
    assert classify_exit(task, 2, log, 0) == (
        FAILED,
        "exit code 2: train.steps: -1 is out of range",
    )
    assert classify_exit(task, 1, log, len(earlier)) == (FAILED, "exit code 1: ValueError: boom")


def test_a_running_task_whose_processes_died_is_failed(workspace):
    store = TaskStore(workspace)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=-1)
    pid = int(gone.stdout)
    with store.transaction():
        task = store.insert(["dataset=digits"], cwd=workspace)
        task = store.update(
            task.id, state=RUNNING, started=time.time(), supervisor_pid=pid, pid=pid
        )
    task = refresh(store, task)
    assert task.state == FAILED and f"process {pid} died" in task.message


# --- end to end: real tasks in the background ----------------------------------------------


def wait_until(condition, timeout: float = 600, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def candidate_ids(run_dir: Path) -> list[int]:
    path = Path(run_dir) / "candidates.jsonl"
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def results(run_dir: Path) -> tuple[str, list]:
    """best_spec.json and each candidate's metrics and utilities."""
    rows = read_candidates(Path(run_dir) / "candidates.jsonl")
    per_candidate = [(r["id"], r["metrics"], r.get("utilities")) for r in rows]
    return (Path(run_dir) / "best_spec.json").read_text(), per_candidate


def add_task(workspace: Path, *overrides: str) -> int:
    """Adds a task in-process (composing is cheap here; a new process imports Hydra)."""
    return Scheduler(workspace).add(list(overrides), cwd=workspace.parent).id


@dataclasses.dataclass
class KilledTask:
    """What the user saw of a task killed twice (see `killed_task`)."""

    workspace: Path
    task_id: int
    status_after_kill: str
    status_after_killing_both: dict
    finished: subprocess.CompletedProcess
    results: tuple[str, list]


def start_and_wait_for_the_run(workspace: Path, task_id: int) -> Task:
    """``amla start`` and the task once its run's PID is recorded."""
    assert amla(workspace, "start", task_id).returncode == 0
    scheduler = Scheduler(workspace)
    wait_until(lambda: scheduler.get(task_id).pid is not None, 60, "the run's PID")
    return scheduler.get(task_id)


@pytest.fixture(scope="module")
def killed_task(tmp_path_factory) -> KilledTask:
    """A tiny NAC task whose run is killed (SIGKILL) while it starts up, then its run and
    supervisor together, then finished by ``amla start --wait``. Nothing was trained
    before the kills, so its results are an uninterrupted run's."""
    workspace = tmp_path_factory.mktemp("killed") / "ws"
    task_id = add_task(workspace, *TASK)
    run_dir = workspace / "runs" / str(task_id)
    scheduler = Scheduler(workspace)
    # 1. kill -9 the run: its supervisor records the kill.
    task = start_and_wait_for_the_run(workspace, task_id)
    os.kill(task.pid, signal.SIGKILL)
    wait_until(lambda: scheduler.get(task_id).state != RUNNING, 60, "the recorded kill")
    status_after_kill = amla(workspace, "status", task_id).stdout
    # 2. kill -9 the supervisor and the run: nobody records it; status must notice.
    task = start_and_wait_for_the_run(workspace, task_id)
    os.kill(task.supervisor_pid, signal.SIGKILL)
    os.kill(task.pid, signal.SIGKILL)
    wait_until(lambda: not procs.is_alive(task.pid, task.pid_start), 30, "the run to die")
    after_both = json.loads(amla(workspace, "status", task_id, "--json").stdout)
    assert not (run_dir / "candidates.jsonl").exists() or not candidate_ids(run_dir)
    # 3. amla start finishes it.
    finished = amla(workspace, "start", task_id, "--wait")
    return KilledTask(workspace, task_id, status_after_kill, after_both, finished, results(run_dir))


@pytest.mark.slow
def test_ten_concurrent_adds_make_ten_tasks(tmp_path):
    workspace = tmp_path / "ws"
    command = [sys.executable, "-m", "amla_jax.tasks.cli", "--workspace", str(workspace), "add"]
    adds = [
        subprocess.Popen([*command, "dataset=digits", f"seed={i}"], env=ENV, stdout=-1, stderr=-1)
        for i in range(10)
    ]
    for add in adds:
        assert add.wait(timeout=300) == 0, add.stderr.read()
    unknown = amla(workspace, "status", 11)  # a usage error through a real process
    assert_usage_error(unknown.returncode, unknown.stderr, "no task 11")
    tasks = Scheduler(workspace).list()
    assert [t.id for t in tasks] == list(range(1, 11))
    assert sorted(t.overrides[-1] for t in tasks) == sorted(f"seed={i}" for i in range(10))
    assert len({t.run_dir for t in tasks}) == 10


# Three candidates: the stop, sent once the first row exists, lands before the search
# ends (with two, a fast machine could finish the second candidate first).
STOP_TASK = [o if not o.startswith("algo.iterations=") else "algo.iterations=3" for o in TASK]


@pytest.mark.slow
def test_stop_then_start_resumes_to_the_uninterrupted_result(tmp_path):
    workspace = tmp_path / "ws"
    reference_id = add_task(workspace, *STOP_TASK)  # the same task, never interrupted
    assert amla(workspace, "start", reference_id, "--wait").returncode == 0
    reference = results(workspace / "runs" / str(reference_id))
    task_id = add_task(workspace, *STOP_TASK)
    run_dir = workspace / "runs" / str(task_id)
    assert amla(workspace, "start", task_id).returncode == 0
    wait_until(
        lambda: (run_dir / "candidates.jsonl").exists() and candidate_ids(run_dir), what="row"
    )
    stopped = amla(workspace, "stop", task_id)
    assert stopped.returncode == 0 and f"task {task_id} stopped" in stopped.stdout, stopped.stderr
    status = Scheduler(workspace).status(task_id)
    assert status.task.state == "stopped" and status.task.exit_code == 143
    if status.completed == status.total:  # SIGTERM came after the last candidate was saved
        pytest.skip("the search finished before the stop arrived (a loaded machine): no resume")
    assert 1 <= status.completed < status.total == 3
    finished = amla(workspace, "start", task_id, "--wait")
    assert finished.returncode == 0 and "resumed" in finished.stdout, finished.stderr
    assert candidate_ids(run_dir) == [0, 1, 2]
    assert results(run_dir) == reference
    log = amla(workspace, "logs", task_id).stdout
    assert "resuming nac search" in log and log.count("=== task") == 2
    again = amla(workspace, "start", task_id)
    assert again.returncode == 0 and "already complete" in again.stdout


@pytest.mark.slow
def test_sigkill_shows_in_status_and_start_finishes_the_task(killed_task):
    assert "state:       failed" in killed_task.status_after_kill
    assert "killed by SIGKILL" in killed_task.status_after_kill
    status = killed_task.status_after_killing_both
    assert status["state"] == "failed" and f"process {status['pid']} died" in status["message"]
    finished = killed_task.finished
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"task {killed_task.task_id} complete" in finished.stdout
    run_dir = killed_task.workspace / "runs" / str(killed_task.task_id)
    assert candidate_ids(run_dir) == [0, 1]
    assert Scheduler(killed_task.workspace).get(killed_task.task_id).starts == 3


@pytest.mark.slow
def test_scheduler_runs_the_queue_within_its_limit_and_records_failures(workspace, capsys):
    spec = workspace.parent / "tiny.json"
    spec.write_text(json.dumps(TINY_NETWORK))
    ids = [add_task(workspace, "algo=fixed", f"spec={spec}", "dataset=digits") for _ in range(3)]
    spec.write_text("{ not json")  # the runs fail after add checked the file
    code, out, _ = cli(capsys, workspace, "scheduler", "-j", "2", "--until-empty", "--poll", "0.2")
    assert code == 0 and out.count("started task") == 3 and out.count("failed") == 3
    tasks = Scheduler(workspace).list()
    assert [t.state for t in tasks] == [FAILED] * 3
    assert all(t.exit_code == 2 and "not valid JSON" in t.message for t in tasks)
    first_end = min(t.finished for t in tasks)
    assert sum(t.started < first_end for t in tasks) == 2  # the third waited for a slot
    code, out, _ = cli(capsys, workspace, "logs", ids[0], "-f")
    assert code == 0 and "error: spec file" in out and out.rstrip().endswith("===")
    code, out, _ = cli(capsys, workspace, "logs", ids[0], "-n", "1")
    assert out.startswith(f"=== task {ids[0]} failed: exit code 2: spec file")


@pytest.mark.slow
def test_delete_refuses_a_running_task_unless_forced(workspace, capsys):
    task_id = add_task(workspace, *TASK)
    assert cli(capsys, workspace, "start", task_id)[0] == 0
    assert_usage_error(*cli(capsys, workspace, "delete", task_id)[::2], "is running")
    code, out, _ = cli(capsys, workspace, "delete", task_id, "--force", "--purge")
    assert code == 0 and "removed" in out
    assert not (workspace / "runs" / str(task_id)).exists()
    assert not (workspace / "tasks" / str(task_id)).exists()
    assert Scheduler(workspace).list() == []
