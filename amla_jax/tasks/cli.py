"""``amla``: AMLA's task commands (add, list, start, stop, status, ...) for ``amla_jax`` runs.

A task is one ``python -m amla_jax`` run, kept in a SQLite store in the workspace
(``--workspace``, ``$AMLA_WORKSPACE`` or ``./amla_workspace``) and run in the background
in its own run directory (default ``<workspace>/runs/<id>``); stopping checkpoints the
search and starting again resumes it. Exit codes: 0 ok, 1 a task or run failed (or did
not stop in time), 2 a usage error (unknown task, bad override or file), with one
``error: ...`` line on stderr.

Synopsis::

    amla add config.nac.construction.test.json dataset=digits   # AMLA's JSON + overrides
    amla add algo=random dataset=digits debug=smoke             # overrides only
    amla list
    amla start 1 [--wait]          # in the background; resumes a stopped/failed task
    amla status 1                  # progress, best accuracy, PID, exit code
    amla logs 1 -f                 # follow its output
    amla stop 1                    # SIGTERM: the search checkpoints and exits
    amla scheduler --max-concurrent 2 --until-empty
    amla delete 1 --purge
    amla report ...                # amla_jax.report
    amla export RUN_DIR --format stablehlo|onnx|savedmodel   # amla_jax.export
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable

from amla_jax.amla.task_config import AmlaConfigWarning
from amla_jax.errors import UserError
from amla_jax.strict_json import dumps
from amla_jax.tasks import display
from amla_jax.tasks.scheduler import (
    NothingToDo,
    Scheduler,
    resolve_workspace,
    tail,
    task_status,
)
from amla_jax.tasks.store import (
    COMPLETE,
    DB_FILE,
    QUEUED,
    RUNNING,
    STATES,
    Task,
    TaskError,
    store_error,
)

OK, FAILURE, USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Runs ``amla`` on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.command == "report":
        return run_report(args.args + rest)
    if args.command == "export":
        from amla_jax.export import main as export_main  # noqa: PLC0415

        return export_main(args.args + rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", AmlaConfigWarning)
            warnings.showwarning = _show_warning
            return args.run(Scheduler(getattr(args, "workspace", None)), args)
    except UserError as exc:
        if isinstance(exc, NothingToDo):
            print(exc)
            return OK
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    except sqlite3.Error as exc:  # the store broke after it opened (a truncated file)
        workspace = resolve_workspace(getattr(args, "workspace", None))
        print(f"error: {store_error(exc, workspace / DB_FILE)}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:  # amla logs 1 | head
        sys.stderr.close()
        return OK


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """AMLA config warnings as one ``warning: ...`` line; others as Python shows them."""
    if issubclass(category, AmlaConfigWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def build_parser() -> argparse.ArgumentParser:
    """The ``amla`` parser: one subcommand per task operation."""
    # On the main parser and on every command, so that both ``amla -w WS list`` and
    # ``amla list -w WS`` work; SUPPRESS keeps a command's absent option from resetting
    # the main parser's value.
    workspace = argparse.ArgumentParser(add_help=False)
    workspace.add_argument(
        "--workspace",
        "-w",
        default=argparse.SUPPRESS,
        help="the task store's directory (default: $AMLA_WORKSPACE or ./amla_workspace)",
    )
    parser = argparse.ArgumentParser(
        prog="amla",
        description="Add, run and watch amla_jax search tasks (AMLA's task CLI).",
        epilog="Run 'amla COMMAND --help' for a command's options.",
        parents=[workspace],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=[workspace])
        sub.set_defaults(run=run)
        return sub

    add = command("add", cmd_add, "queue a task: an AMLA config (JSON) and/or Hydra overrides")
    add.add_argument(
        "items",
        nargs="*",
        metavar="[AMLA_CONFIG.json] OVERRIDE",
        help="an AMLA task config first (optional), then overrides for python -m amla_jax",
    )
    add.add_argument("--name", help="a label (default: the AMLA config's arch_name)")
    add.add_argument("--run-dir", help="the run directory (default: <workspace>/runs/<id>)")
    add.add_argument("--json", action="store_true", help="print the task as JSON")

    listing = command("list", cmd_list, "list the tasks")
    listing.add_argument(
        "--state", action="append", choices=STATES, help="only tasks in this state (repeatable)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")

    start = command("start", cmd_start, "start a task in the background (resumes it)")
    start.add_argument("id", type=int, metavar="ID", help="the task id (see amla list)")
    start.add_argument("--wait", action="store_true", help="block until the task ends")

    stop = command("stop", cmd_stop, "stop a task gracefully (it checkpoints first)")
    stop.add_argument("id", type=int, metavar="ID", help="the task id (see amla list)")
    stop.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (120)")
    stop.add_argument("--kill", action="store_true", help="SIGKILL it after the timeout")

    status = command("status", cmd_status, "show a task's state and progress")
    status.add_argument("id", type=int, metavar="ID", help="the task id (see amla list)")
    status.add_argument("--json", action="store_true", help="print JSON")

    logs = command("logs", cmd_logs, "print a task's output (stdout and stderr)")
    logs.add_argument("id", type=int, metavar="ID", help="the task id (see amla list)")
    logs.add_argument("-n", "--lines", type=int, help="only the last N lines")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until it ends")

    delete = command("delete", cmd_delete, "delete a task")
    delete.add_argument("id", type=int, metavar="ID", help="the task id (see amla list)")
    delete.add_argument("--force", action="store_true", help="stop it first if it runs")
    delete.add_argument("--purge", action="store_true", help="also remove its run directory")

    scheduler = command("scheduler", cmd_scheduler, "run queued tasks as capacity allows")
    scheduler.add_argument("--max-concurrent", "-j", type=int, default=1, help="default 1")
    scheduler.add_argument("--poll", type=float, default=2.0, help="seconds between checks")
    mode = scheduler.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="start what fits, then return")
    mode.add_argument(
        "--until-empty", action="store_true", help="return once the queue is empty and done"
    )

    report = commands.add_parser(
        "report", help="report on runs (amla_jax.report; see amla report --help)", add_help=False
    )
    report.add_argument("args", nargs=argparse.REMAINDER)
    export = commands.add_parser(
        "export", help="export a trained network (see amla export --help)", add_help=False
    )
    export.add_argument("args", nargs=argparse.REMAINDER)
    return parser


# --- commands ---------------------------------------------------------------------------


def cmd_add(scheduler: Scheduler, args) -> int:
    items = list(args.items)
    amla_config = None
    if items and "=" not in items[0] and not items[0].startswith(("~", "+")):
        amla_config = items.pop(0)
    task = scheduler.add(items, amla_config=amla_config, run_dir=args.run_dir, name=args.name)
    if args.json:
        print(dumps(task.to_json(), indent=2))
    else:
        print(f"task {task.id} {task.state}: {task.algo}, run dir {task.run_dir}")
        print(f"  overrides: {' '.join(task.overrides) or '(none)'}")
    return OK


def cmd_list(scheduler: Scheduler, args) -> int:
    statuses = [task_status(t) for t in scheduler.list(args.state)]
    if args.json:
        print(dumps([s.to_json() for s in statuses], indent=2))
        return OK
    header = ("id", "name", "state", "algo", "done", "best val", "created", "elapsed", "run dir")
    rows = [header] + [display.list_row(s) for s in statuses]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if not statuses:
        print(f"(no tasks in {scheduler.workspace}; add one with amla add)")
    return OK


def cmd_start(scheduler: Scheduler, args) -> int:
    resumed = scheduler.get(args.id).state != QUEUED
    task = scheduler.start(args.id)
    verb = "resumed" if resumed else "started"
    print(
        f"task {task.id} {verb} (supervisor pid {task.supervisor_pid}); log: amla logs {task.id} -f"
    )
    if not args.wait:
        return OK
    try:
        task = scheduler.wait(task.id)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; task {task.id} runs on (amla stop {task.id} stops it)")
        return 128 + signal.SIGINT
    print(display.ending(task_status(task)))
    return OK if task.state == COMPLETE else FAILURE


def cmd_stop(scheduler: Scheduler, args) -> int:
    before = scheduler.get(args.id)
    if before.state not in (QUEUED, RUNNING):
        print(f"task {args.id} is not running ({before.state}); nothing to stop")
        return OK
    task = scheduler.stop(args.id, timeout=args.timeout, kill=args.kill)
    if task.state == RUNNING:
        print(
            f"error: task {task.id} still runs after {args.timeout:g} s; wait, or use --kill",
            file=sys.stderr,
        )
        return FAILURE
    print(f"task {task.id} {task.state}: {task.message}")
    return OK


def cmd_status(scheduler: Scheduler, args) -> int:
    status = scheduler.status(args.id)
    if args.json:
        print(dumps(status.to_json(), indent=2))
        return OK
    task = status.task
    best = "-"
    if status.best_id is not None:
        best = (
            f"val acc {display.accuracy(status.best_val)}, test acc {display.accuracy(status.best_test)} "
            f"(candidate {status.best_id})"
        )
    fields = [
        ("state", display.state_line(task)),
        ("algo", task.algo or "-"),
        ("progress", f"{display.progress(status)} candidates"),
        ("best", best),
        ("elapsed", f"{display.duration(task.elapsed_now())} over {task.starts} start(s)"),
        ("created", display.when(task.created)),
        ("started", display.when(task.started)),
        ("finished", display.when(task.finished) if task.state != RUNNING else "-"),
        ("run dir", task.run_dir),
        ("log", str(scheduler.log_path(task.id))),
        ("amla config", task.amla_config or "-"),
        ("overrides", " ".join(task.overrides) or "-"),
        ("exit code", "-" if task.exit_code is None else str(task.exit_code)),
        ("message", task.message or "-"),
    ]
    print(f"task {task.id}" + (f" ({task.name})" if task.name else ""))
    for name, value in fields:
        print(f"  {name + ':':<12} {value}")
    return OK


def cmd_logs(scheduler: Scheduler, args) -> int:
    if args.follow:
        for chunk in scheduler.follow_log(args.id, args.lines):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        return OK
    path = scheduler.log_path(args.id)
    if not path.exists():
        print(f"(task {args.id} has no output yet)", file=sys.stderr)
        return OK
    sys.stdout.write(tail(path.read_text(errors="replace"), args.lines))
    return OK


def cmd_delete(scheduler: Scheduler, args) -> int:
    task = scheduler.delete(args.id, force=args.force, purge=args.purge)
    kept = "removed" if args.purge else "kept"
    print(f"deleted task {task.id} (run dir {task.run_dir} {kept})")
    return OK


def cmd_scheduler(scheduler: Scheduler, args) -> int:
    if args.max_concurrent < 1:
        raise TaskError(f"--max-concurrent: {args.max_concurrent} must be at least 1")
    if args.once:
        for task in scheduler.start_queued(args.max_concurrent):
            _event("started", task)
        return OK
    print(
        f"scheduler: {scheduler.workspace}, up to {args.max_concurrent} at a time "
        f"(Ctrl-C stops the scheduler; tasks run on)",
        flush=True,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        scheduler.run_queued(args.max_concurrent, args.poll, args.until_empty, _event)
    except KeyboardInterrupt:
        running = [str(t.id) for t in scheduler.list([RUNNING])]
        still = f"; still running: {', '.join(running)}" if running else ""
        print(f"\nscheduler stopped{still}", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return OK


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _event(kind: str, task: Task) -> None:
    stamp = time.strftime("%H:%M:%S")
    if kind == "started":
        print(f"{stamp} started task {task.id} ({task.algo}, run dir {task.run_dir})", flush=True)
    else:
        print(f"{stamp} {display.ending(task_status(task))}", flush=True)


def run_report(argv: list[str]) -> int:
    """``amla report ARGS``: `amla_jax.report.main(ARGS)`, imported only when asked for."""
    try:
        from amla_jax.report import main as report_main  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if exc.name not in ("amla_jax.report",):
            raise
        print("error: amla report is not available (no module amla_jax.report)", file=sys.stderr)
        return FAILURE
    return report_main(argv)


# --- formatting -------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())
