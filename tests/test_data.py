import pickle

import numpy as np
import pytest
import torch

from armor import UserError, load_dataset
from armor.data import augment, default_data_dir, resolve_preset


def test_digits_split_is_fixed_stratified_and_in_unit_box():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (1200, 200, 397)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert a.x_train.min() >= 0 and a.x_train.max() <= 1 and a.input_shape == (1, 8, 8)
    counts = torch.bincount(a.y_test, minlength=10)
    assert counts.min() >= 38 and counts.max() <= 41
    # the three splits share no image index: no test image leaks into training
    train = {tuple(r) for r in a.x_train.flatten(1).tolist()}
    assert sum(tuple(r) in train for r in a.x_test.flatten(1).tolist()) < 5  # digits has a few exact duplicates


def test_custom_npz_is_checked_and_loaded(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rng.integers(0, 256, (50, 12, 12), dtype=np.uint8), y_train=rng.integers(0, 3, 50),
             x_test=rng.integers(0, 256, (20, 12, 12), dtype=np.uint8), y_test=rng.integers(0, 3, 20))
    d = load_dataset(str(path), val_size=10)
    assert d.input_shape == (1, 12, 12) and d.num_classes == 3 and len(d.x_train) == 40


@pytest.mark.parametrize("arrays,message", [
    (dict(x_train=np.zeros((5, 4, 1, 1, 1)), y_train=np.zeros(5), x_test=np.zeros((5, 4, 1, 1, 1)), y_test=np.zeros(5)),
     "must be feature vectors shaped \\(N, F\\) or images shaped"),
    (dict(x_train=np.full((6, 4), np.nan), y_train=np.arange(6) % 2, x_test=np.zeros((5, 4)), y_test=np.zeros(5)),
     "holds NaN or infinite values"),
    (dict(x_train=np.full((5, 4, 4), 2.0), y_train=np.zeros(5), x_test=np.zeros((5, 4, 4)), y_test=np.zeros(5)),
     "values in \\[0, 1\\]"),
    (dict(x_train=np.zeros((5, 4, 4)), y_train=np.zeros(4), x_test=np.zeros((5, 4, 4)), y_test=np.zeros(5)),
     "4 labels for 5 images"),
    (dict(x_train=np.zeros((5, 4, 4)), y_train=-np.ones(5), x_test=np.zeros((5, 4, 4)), y_test=np.zeros(5)),
     "label -1"),
    (dict(x_train=np.zeros((5, 4, 4)), y_train=np.zeros(5)), "lacks array"),
])
def test_bad_npz_data_is_a_one_line_user_error(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserError, match=message):
        load_dataset(str(path), val_size=1)


def _write_cifar_folder(folder, n=4):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


def test_cifar10_python_folder_loads(tmp_path):
    _write_cifar_folder(tmp_path / "cifar-10-batches-py")
    d = load_dataset(str(tmp_path / "cifar-10-batches-py"), val_size=2)
    assert d.input_shape == (3, 32, 32) and len(d.x_train) == 18 and len(d.x_test) == 4
    raw = pickle.load(open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb"))[b"data"][0]
    assert torch.allclose(d.x_test[0], torch.tensor(raw.reshape(3, 32, 32) / 255.0, dtype=torch.float32))


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned",))


def test_cifar_loader_refuses_a_pickle_that_would_run_code(tmp_path, monkeypatch):
    _write_cifar_folder(tmp_path / "c")
    with open(tmp_path / "c" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, f)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="refusing to load posix.system|refusing to load os.system"):
        load_dataset(str(tmp_path / "c"))
    assert not (tmp_path / "pwned").exists()


def test_unknown_dataset_names_what_is_allowed():
    with pytest.raises(UserError, match="unknown dataset 'imagenet42'.*digits, breast_cancer, mnist"):
        load_dataset("imagenet42")


def test_augmentation_is_batched_and_stays_in_unit_box():
    x = torch.rand(16, 3, 32, 32)
    assert resolve_preset("auto", "cifar10", 32) == "crop_flip" and resolve_preset("auto", "digits", 8) == "none"
    for preset in ("translate", "crop_flip", "strong"):
        out = augment(x, preset)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        assert not torch.equal(out, x)
    # a shift moves content without changing it: an image with one bright pixel keeps exactly one
    one = torch.zeros(8, 1, 28, 28)
    one[:, :, 14, 14] = 1
    assert (augment(one, "translate").flatten(1).sum(1) == 1).all()


@pytest.mark.skipif(default_data_dir() is None or not (default_data_dir() / "mnist.npz").is_file(),
                    reason="MNIST copy not present (../shared/data/mnist.npz)")
def test_exact_mnist_copy_loads_with_its_checksums():
    d = load_dataset("mnist", train_size=1000, val_size=100, test_size=500)
    assert d.input_shape == (1, 28, 28) and len(d.x_train) == 1000 and len(d.x_test) == 500
