import os
import pickle

import numpy as np
import pytest
import torch
from curriculum_cl.data.datasets import load_dataset, restrict_classes
from curriculum_cl.data.synthetic import write_synthetic
from curriculum_cl.errors import DatasetError

from visioncore.safe_pickle import UnsafePickleError, restricted_load


@pytest.mark.parametrize("fmt", ["mnist", "fashion-mnist", "cifar10", "nod", "folder"])
def test_loaders_read_the_real_layouts(tmp_path, fmt):
    root = write_synthetic(tmp_path / fmt, fmt, n_train=4, n_test=2, size=12)
    ds = load_dataset(fmt, root)
    n_classes = 4 if fmt == "folder" else (5 if fmt == "nod" else 10)
    assert len(ds.train) == 4 * n_classes and len(ds.test) == 2 * n_classes
    img, label = ds.train[0]
    assert img.dtype == torch.uint8 and img.shape[-2:] == ((32, 32) if fmt == "cifar10" else (12, 12))
    assert img.shape[0] == (1 if "mnist" in fmt else 3)  # NOD RGBA renders come back RGB
    assert sorted(torch.unique(ds.train.labels).tolist()) == list(range(n_classes))
    if fmt == "nod":
        assert ds.class_names == ["fa1", "fa2", "fb1", "fb3", "fc1"]


def test_cifar_binary_release_and_digits(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rec = np.zeros((3, 3073), dtype=np.uint8)
    rec[:, 0] = [3, 1, 4]
    rec[1, 1] = 200  # first red pixel of the second image
    for name in ["data_batch_1.bin", "test_batch.bin"]:
        rec.tofile(folder / name)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train.labels.tolist() == [3, 1, 4]
    assert ds.train[1][0][0, 0, 0] == 200
    digits = load_dataset("digits")
    assert len(digits.train) + len(digits.test) == 1797
    assert 120 <= (digits.train.labels == 0).sum() <= 130  # ~125 training images per class


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_rejects_code_and_corrupt_batches(tmp_path):
    evil = tmp_path / "cifar-10-batches-py"
    evil.mkdir()
    (evil / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    (evil / "data_batch_1").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    with pytest.raises(UnsafePickleError, match="os|posix|system"):
        load_dataset("cifar10", tmp_path)
    (evil / "data_batch_1").write_bytes(b"\x80\x04garbage")
    with pytest.raises(UnsafePickleError, match="data_batch_1"):
        load_dataset("cifar10", tmp_path)
    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps({b"data": np.arange(4, dtype=np.uint8), b"labels": [1, 2]}, protocol=2))
    assert restricted_load(ok, encoding="bytes")[b"labels"] == [1, 2]


def test_bad_inputs_name_the_cause(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST"):
        load_dataset("mnist", tmp_path)
    root = write_synthetic(tmp_path / "m", "mnist", n_train=2, n_test=1, size=8)
    raw = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    raw.write_bytes(raw.read_bytes()[:30])
    with pytest.raises(DatasetError, match="train-images"):
        load_dataset("mnist", root)
    with pytest.raises(DatasetError, match="12"):
        restrict_classes(load_dataset("digits"), [0, 12])


def test_structured_features_have_the_declared_similarity():
    from curriculum_cl.data.synthetic import structured_features

    data = structured_features(dim=16, n_train=200, n_test=10, far=6.0, near=1.5, noise=1.0, seed=1)
    sim = data["similarity"]
    assert sim.shape == (5, 5) and np.allclose(np.diag(sim), 1)
    assert sim[0, 1] > 0.9 and sim[2, 3] > 0.9  # the near pairs
    assert abs(sim[0, 2]) < 0.1 and abs(sim[4, 0]) < 0.1 and abs(sim[4, 3]) < 0.1  # orthogonal groups
    means = np.stack([data["train"][data["train_labels"] == c].mean(0) for c in range(5)])
    assert np.linalg.norm(means[0] - means[1]) < np.linalg.norm(means[0] - means[2]) / 3
