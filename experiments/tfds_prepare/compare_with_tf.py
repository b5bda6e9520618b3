"""Does amla_jax's TF-free prepare write what tfds' own (TensorFlow) builders write?

Writes tiny synthetic files in each dataset's published format (tests/published_fakes.py),
prepares them twice: with tfds' stock builder under a Python that has TensorFlow (its
download manager replaced by the local files), and with `amla_jax.data.tfds_build`
under this Python (no TensorFlow); then compares, index by index, every record that
``tfds.data_source`` returns, and the metadata files.

Synopsis (from the repository root; the TF venv needs tensorflow-cpu, tensorflow-datasets
of the same version, array_record, importlib_resources, pillow):
    python experiments/tfds_prepare/compare_with_tf.py --tf_python /tmp/tfvenv/bin/python
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from unittest import mock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = ("cifar10", "cifar100", "mnist", "fashion_mnist")
# Metadata that legitimately differs: who built it, the encoded size (PIL's PNGs are
# not byte-identical to TensorFlow's), and the download size (ours is not recorded).
VOLATILE = ("moduleName", "numBytes", "downloadSize", "datasetSize")


def build_with_tf(name: str, files: str, data_dir: str) -> None:
    """Runs under the TF Python: tfds' stock builder, downloads replaced by ``files``."""
    import tensorflow_datasets as tfds

    extracted = os.path.join(files, "extracted")
    os.makedirs(extracted, exist_ok=True)
    for entry in os.listdir(files):
        path = os.path.join(files, entry)
        if entry.endswith(".tar.gz"):
            with tarfile.open(path) as archive:
                archive.extractall(extracted)
        elif entry.endswith(".gz"):
            with gzip.open(path) as src, open(os.path.join(extracted, entry[:-3]), "wb") as dst:
                dst.write(src.read())

    def download_and_extract(self, urls):
        local = lambda url: os.path.join(extracted, url.rsplit("/", 1)[-1].removesuffix(".gz"))  # noqa: E731
        if isinstance(urls, dict):
            return {key: local(url) for key, url in urls.items()}
        return extracted  # CIFAR: the archive's folder is joined on by the builder

    from tensorflow_datasets.image_classification import mnist

    # tfds' MNIST builders hard-code 60000 + 10000 examples: tell them the fakes' counts.
    labels = {
        split: os.path.join(extracted, f"{split}-labels-idx1-ubyte") for split in ("train", "t10k")
    }
    counts = {
        split: os.path.getsize(path) - 8 for split, path in labels.items() if os.path.exists(path)
    }
    with (
        mock.patch.object(
            tfds.download.DownloadManager, "download_and_extract", download_and_extract
        ),
        mock.patch.object(mnist, "_TRAIN_EXAMPLES", counts.get("train", 60000)),
        mock.patch.object(mnist, "_TEST_EXAMPLES", counts.get("t10k", 10000)),
    ):
        tfds.builder(name, data_dir=data_dir).download_and_prepare(file_format="array_record")


def metadata(data_dir: str, name: str) -> dict:
    """The metadata files of a prepared dataset, volatile fields removed."""
    (version,) = os.listdir(os.path.join(data_dir, name))
    folder = os.path.join(data_dir, name, version)
    found = {}
    for entry in sorted(os.listdir(folder)):
        if entry.endswith(".json") or entry.endswith(".txt"):
            text = open(os.path.join(folder, entry)).read()
            found[entry] = json.loads(text) if entry.endswith(".json") else text
    info = found["dataset_info.json"]
    for key in VOLATILE:
        info.pop(key, None)
    for split in info["splits"]:
        split.pop("numBytes", None)
    return found


def compare(name: str, tf_dir: str, ours_dir: str) -> list[str]:
    """Differences between the two prepared copies of ``name`` (empty: none)."""
    import numpy as np
    import tensorflow_datasets as tfds

    problems = []
    if metadata(tf_dir, name) != metadata(ours_dir, name):
        problems.append(
            f"{name}: metadata differ: {metadata(tf_dir, name)} vs {metadata(ours_dir, name)}"
        )
    for split in ("train", "test"):
        theirs = tfds.data_source(name, split=split, data_dir=tf_dir)
        ours = tfds.data_source(name, split=split, data_dir=ours_dir)
        if len(theirs) != len(ours):
            problems.append(f"{name}/{split}: {len(theirs)} vs {len(ours)} records")
            continue
        for index in range(len(ours)):
            a, b = theirs[index], ours[index]
            if a.keys() != b.keys() or any(not np.array_equal(a[k], b[k]) for k in a):
                problems.append(f"{name}/{split}[{index}] differs")
                break
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf_python", required=True, help="a Python with TensorFlow and tfds")
    parser.add_argument("--num_train", type=int, default=500)
    parser.add_argument("--num_test", type=int, default=100)
    args = parser.parse_args()
    sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
    from published_fakes import point_sources_at, write_published

    from amla_jax.data import download, tfds_build

    work = tempfile.mkdtemp(prefix="tfds_compare_")
    problems = []
    for name in NAMES:
        files = os.path.join(work, name, "files")
        write_published(name, files, args.num_train, args.num_test)
        start = time.perf_counter()
        built = subprocess.run(
            [args.tf_python, __file__, "--build_with_tf", name, files, os.path.join(work, "tf")],
            capture_output=True,
            text=True,
        )
        if built.returncode:
            sys.exit(f"the TF build of {name} failed:\n{built.stderr[-3000:]}")
        tf_seconds = time.perf_counter() - start
        point_sources_at(name, files)
        start = time.perf_counter()
        tfds_build.prepare_published(name, os.path.join(work, "ours"), manual_dir=files)
        ours_seconds = time.perf_counter() - start
        found = compare(name, os.path.join(work, "tf"), os.path.join(work, "ours"))
        problems += found
        print(
            f"{name}: {args.num_train}+{args.num_test} records, "
            f"{'identical' if not found else 'DIFFERENT'} "
            f"(tfds+TF {tf_seconds:.1f} s incl. TF import, amla_jax {ours_seconds:.1f} s)"
        )
    assert download.SOURCES  # the fake digests only replaced this process's table
    shutil.rmtree(work)
    print("\n".join(problems) or "all identical: records (by index) and metadata")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--build_with_tf":
        build_with_tf(*sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
