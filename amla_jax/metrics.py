"""Metric writers: JSON lines (``metrics.jsonl``) and TensorBoard event files.

TensorBoard files come from tensorboardX, so no TensorFlow is needed. Every writer has
the same small contract: ``write(step, scalars)`` appends one record; ``close()`` flushes.

Synopsis::

    writer = MetricWriter(run_dir, prefix="candidate_0")   # or MetricWriter(None): no-op
    writer.write(100, {"train/loss": 0.31, "train/accuracy": 0.9})
    writer.close()
"""

from __future__ import annotations

import time
from pathlib import Path

from amla_jax.rundir import METRICS, TB_DIR
from amla_jax.strict_json import dumps


class MetricWriter:
    """Appends scalars to ``<run_dir>/metrics.jsonl`` and ``<run_dir>/tb/<prefix>``.

    Args:
      run_dir: the run directory, or None to write nothing.
      prefix: a tag for the network being trained (one TensorBoard run per candidate);
        stored in every JSON line as ``"run"``.
      tensorboard: also write TensorBoard event files.
    """

    def __init__(self, run_dir: str | Path | None, prefix: str = "train", tensorboard: bool = True):
        self.prefix = prefix
        self._jsonl = None
        self._tb = None
        if run_dir is None:
            return
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(run_dir / METRICS, "a")  # noqa: SIM115 (closed in close())
        if tensorboard:
            from tensorboardX import SummaryWriter  # noqa: PLC0415 (optional at import)

            self._tb = SummaryWriter(str(run_dir / TB_DIR / prefix))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        """Records ``scalars`` (plain floats) at ``step``."""
        if self._jsonl is None:
            return
        record = {"run": self.prefix, "step": int(step), "time": round(time.time(), 3)}
        record.update({k: float(v) for k, v in scalars.items()})
        self._jsonl.write(dumps(record) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for name, value in scalars.items():
                self._tb.add_scalar(name, float(value), int(step))

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
