"""One process of tests/test_distributed.py: trains the tiny network a few steps on digits.

Run as ``python tests/distributed_worker.py RUN_DIR`` with ``AMLA_JAX_*`` set (or not, for
the one-process reference); process 0 writes RUN_DIR/metrics.jsonl and prints a summary.
"""

import json
import sys

from amla_jax.train.distributed import initialize_from_environment, is_primary

initialize_from_environment()

import jax  # noqa: E402
from conftest import TINY_NETWORK  # noqa: E402

from amla_jax.config import OptimConfig, TrainConfig  # noqa: E402
from amla_jax.data import DataConfig, load_dataset  # noqa: E402
from amla_jax.spec import NetworkSpec  # noqa: E402
from amla_jax.train import train_and_evaluate  # noqa: E402

train = TrainConfig(steps=3, batch_size=16, eval_batch_size=64, log_every=1, progress=False,
                    bn_calibration_batches=2)  # fmt: skip
result = train_and_evaluate(
    NetworkSpec.from_json(TINY_NETWORK),
    load_dataset(DataConfig(name="digits")),
    OptimConfig(),
    train,
    jax.random.key(0),
    run_dir=sys.argv[1],  # each process its own: only process 0's may be written
)
if is_primary():
    summary = {"processes": jax.process_count(), "devices": jax.device_count()}
    print(json.dumps({**summary, "metrics": result.metrics}))
