"""Preparing tfds datasets without TensorFlow, from their published files (downloads faked).

The readers are checked on hand-made bytes; the download on its digest, atomicity and
offline message; the prepared datasets against the synthetic examples they were built
from and against tfds' own builders' metadata (features, version, splits).
"""

from __future__ import annotations

import gzip
import os
import urllib.error

import numpy as np
import pytest
import tensorflow_datasets as tfds
from published_fakes import CIFAR10_NAMES, serve, split_data, write_published

from amla_jax.data import DataConfig, DataError, download, load_dataset, published, tfds_build
from amla_jax.data import prepare as prepare_cli

SIZES = {"cifar10": (32, 32, 3), "cifar100": (32, 32, 3), "mnist": (28, 28, 1)}
SIZES["fashion_mnist"] = (28, 28, 1)


def test_cifar_records_are_label_bytes_then_red_green_blue_planes():
    record = bytes([7]) + bytes(range(256)) * 12  # 3072 image bytes
    labels, images = published.parse_cifar_records(record, 1)
    assert labels.tolist() == [[7]] and images.shape == (1, 32, 32, 3)
    planes = np.frombuffer(bytes(range(256)) * 12, np.uint8).reshape(3, 32, 32)
    assert images[0, 0, 1].tolist() == [planes[0, 0, 1], planes[1, 0, 1], planes[2, 0, 1]]
    assert images[0, 1, 0, 0] == 32  # row-major: the second row starts at byte 32
    two = published.parse_cifar_records(bytes([3, 42]) + bytes(3072), 2)[0]
    assert two.tolist() == [[3, 42]]


def test_damaged_files_are_one_line_errors_naming_them(tmp_path):
    with pytest.raises(DataError, match="test_batch.bin has 3000 bytes"):
        published.parse_cifar_records(bytes(3000), 1, "test_batch.bin")
    with pytest.raises(DataError, match="bad header"):
        published.parse_idx(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00", "x.gz")
    with pytest.raises(DataError, match="header declares 12"):
        published.parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3]), "labels")
    (tmp_path / "not.tar.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read the archive"):
        published.read_tar_members(tmp_path / "not.tar.gz", ["a"])


def test_idx_header_gives_the_shape():
    data = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3]) + bytes([1, 2, 3, 4, 5, 6])
    assert published.parse_idx(data).tolist() == [[[1, 2, 3]], [[4, 5, 6]]]


def test_sources_are_the_urls_and_digests_tfds_records():
    # If tfds changes a URL or a file, this says so before a user's download fails.
    root = os.path.join(os.path.dirname(tfds.__file__), "url_checksums")
    for name, sources in download.SOURCES.items():
        recorded = {}
        for line in open(os.path.join(root, f"{name}.txt")):
            url, size, digest, _ = line.strip().split("\t")
            recorded[url] = (int(size), digest)
        assert {s.url: (s.size, s.sha256) for s in sources} == recorded, name


def test_download_is_checked_atomic_and_done_once(monkeypatch, tmp_path):
    fetched = serve(monkeypatch, "mnist", tmp_path / "web")
    downloads, manual = str(tmp_path / "dl"), str(tmp_path / "dl" / "manual")
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "t10k-images-idx3-ubyte.gz.abc.part").write_bytes(b"killed")
    download.remove_partial_downloads(downloads)
    paths = download.obtain("mnist", downloads, manual)
    assert len(fetched) == 4 and sorted(os.listdir(downloads)) == sorted(paths)
    assert download.obtain("mnist", downloads, manual) == paths and len(fetched) == 4


def test_a_corrupt_download_leaves_nothing(monkeypatch, tmp_path):
    serve(monkeypatch, "cifar10", tmp_path / "web")
    (tmp_path / "web" / "cifar-10-binary.tar.gz").write_bytes(b"a proxy's error page")
    with pytest.raises(DataError, match="SHA-256 differs") as caught:
        download.obtain("cifar10", str(tmp_path / "dl"), str(tmp_path / "manual"))
    assert "\n" not in str(caught.value) and os.listdir(tmp_path / "dl") == []


def test_offline_is_one_line_naming_the_url_and_where_to_place_the_file(monkeypatch, tmp_path):
    def offline(url):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download, "open_url", offline)
    with pytest.raises(DataError) as caught:
        load_dataset(DataConfig(name="cifar10", data_dir=str(tmp_path)))
    message = str(caught.value)
    assert "\n" not in message and os.listdir(tmp_path / "downloads") == []
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in message
    assert f"place cifar-10-binary.tar.gz in {tmp_path}/downloads/manual/" in message


@pytest.mark.parametrize("name", sorted(tfds_build.BUILDERS))
def test_prepared_dataset_holds_the_published_examples(name, monkeypatch, tmp_path):
    fetched = serve(monkeypatch, name, tmp_path / "web", num_train=20, num_test=8)
    data_dir = str(tmp_path / "tfds")
    assert tfds_build.prepare_published(name, data_dir) == {"train": 20, "test": 8}
    assert len(fetched) == len(download.SOURCES[name])
    for split, count in (("train", 20), ("test", 8)):
        labels, images = split_data(name, split, count)
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        got = sorted((int(r["label"]), r["image"].tobytes()) for r in source)
        want = sorted(
            (int(label[-1]), image.tobytes()) for label, image in zip(labels, images, strict=True)
        )
        assert got == want and source[0]["image"].shape == SIZES[name]
    stock = tfds.builder_cls(name)
    info = tfds.builder(name, data_dir=data_dir).info
    assert (info.name, info.version, info.file_format.value) == (
        name,
        stock.VERSION,
        "array_record",
    )
    assert (
        info.features.to_json() == stock(data_dir=str(tmp_path / "empty")).info.features.to_json()
    )


def test_cifar_keeps_tfds_ids_and_label_names(monkeypatch, tmp_path):
    serve(monkeypatch, "cifar10", tmp_path / "web", num_train=10, num_test=4)
    tfds_build.prepare_published("cifar10", str(tmp_path))
    info = tfds.builder("cifar10", data_dir=str(tmp_path)).info
    assert info.features["label"].names == CIFAR10_NAMES
    source = tfds.data_source("cifar10", split="train", data_dir=str(tmp_path))
    labels, images = split_data("cifar10", "train", 10)
    for record in source:  # tfds' id: the example's position in the published files
        index = int(record["id"].decode().removeprefix("train_"))
        np.testing.assert_array_equal(record["image"], images[index])
        assert record["label"] == labels[index, 0]


def test_a_killed_prepare_leaves_nothing_that_reads_as_prepared(monkeypatch, tmp_path):
    fetched = serve(monkeypatch, "mnist", tmp_path / "web")
    original, calls = tfds_build.encode_png, []

    def dies_midway(image):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # as Ctrl-C would
        return original(image)

    monkeypatch.setattr(tfds_build, "encode_png", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        tfds_build.prepare_published("mnist", str(tmp_path))
    assert not tfds_build.is_prepared("mnist", str(tmp_path))
    # What a kill -9 leaves (tfds' unfinished dir) is not read, and is cleared.
    (tmp_path / "mnist" / "incomplete.ABC_3.0.1").mkdir(parents=True)
    (tmp_path / "mnist" / "incomplete.ABC_3.0.1" / "dataset_info.json").write_text("{}")
    monkeypatch.setattr(tfds_build, "encode_png", original)
    assert not tfds_build.is_prepared("mnist", str(tmp_path))
    assert tfds_build.prepare_published("mnist", str(tmp_path))["train"] == 20
    assert len(fetched) == 4  # the files downloaded before the kill are reused
    assert os.listdir(tmp_path / "mnist") == ["3.0.1"]


def test_first_load_prepares_later_loads_read(monkeypatch, tmp_path):
    fetched = serve(monkeypatch, "cifar10", tmp_path / "web", num_train=30, num_test=10)
    cfg = DataConfig(name="cifar10", data_dir=str(tmp_path), validation_size=5)
    first = load_dataset(cfg)
    again = load_dataset(cfg)
    assert len(fetched) == 1
    assert (again.info.num_train, again.info.num_validation, again.info.num_test) == (25, 5, 10)
    np.testing.assert_array_equal(
        next(first.train_batches(0, 8))["image"], next(again.train_batches(0, 8))["image"]
    )


def test_manual_files_are_used_and_checked(monkeypatch, tmp_path):
    fetched = serve(monkeypatch, "fashion_mnist", tmp_path / "web")
    manual = tmp_path / "tfds" / "downloads" / "manual"
    write_published("fashion_mnist", manual, 20, 8)
    assert prepare_cli.main(["fashion_mnist", "--data_dir", str(tmp_path / "tfds")]) == 0
    assert fetched == []
    with gzip.open(manual / "train-labels-idx1-ubyte.gz", "wb") as file:
        file.write(b"not mnist")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is not the published"):
        download.obtain("fashion_mnist", str(tmp_path / "other"), str(manual))


def test_imagenet_still_needs_its_manual_download(tmp_path):
    with pytest.raises(DataError) as caught:
        load_dataset(DataConfig(name="imagenet2012", data_dir=str(tmp_path)))
    message = str(caught.value)
    assert "manual download required" in message and "ILSVRC2012_img_train.tar" in message
    assert "\n" not in message
