"""Datasets as tensors in [0, 1], shaped (N, C, H, W), with fixed seeded train/val/test splits.

``digits`` (scikit-learn's ``load_digits``) ships with the package and is the default. MNIST,
Fashion-MNIST and CIFAR-10 are read from ``.npz`` archives (``x_train, y_train, x_test, y_test``) in
the data folder, or CIFAR-10 from the python-pickle folder users already have.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import UserError

NAMED = ("digits", "mnist", "fashion_mnist", "cifar10")

#: sha256 of each array's raw bytes, from ``shared/data/README.md`` (the exact copies armor was checked on).
ARRAY_SHA256 = {
    "mnist": {"x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
              "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
              "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
              "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5"},
    "fashion_mnist": {"x_train": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
                      "y_train": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
                      "x_test": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
                      "y_test": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9"},
    "cifar10": {"x_train": "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
                "y_train": "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
                "x_test": "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
                "y_test": "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5"},
}


@dataclass
class Dataset:
    """Train/val/test tensors (float32 in [0, 1], int64 labels) and the statistics models normalise by."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: list = field(default_factory=list)
    std: list = field(default_factory=list)

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> "Dataset":
        moved = {k: getattr(self, k).to(device) for k in
                 ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        return replace(self, **moved)

    def describe(self) -> str:
        c, h, w = self.input_shape
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} val / {len(self.x_test)} test, "
                f"{c}×{h}×{w}, {self.num_classes} classes")


def default_data_dir() -> Optional[Path]:
    """``$ARMOR_DATA_DIR``, else ``./data``, else the ``shared/data`` folder beside the checkout."""
    candidates = [os.environ.get("ARMOR_DATA_DIR"), "data", "../shared/data",
                  Path(__file__).resolve().parents[3] / "shared" / "data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def _as_images(x: np.ndarray, what: str) -> torch.Tensor:
    """uint8 0..255 or float 0..1 images of shape (N,H,W), (N,H,W,C) or (N,C,H,W) → float (N,C,H,W)."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)
    else:
        raise UserError(f"{what} must be images shaped (N,H,W), (N,H,W,C) or (N,C,H,W), got shape {x.shape}")
    if x.shape[0] == 0:
        raise UserError(f"{what} is empty; it needs at least one image")
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)
    if not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{what} must be uint8 (0..255) or float (0..1), got dtype {x.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise UserError(f"{what} must hold values in [0, 1] (inputs live in [0, 1]; normalisation is the "
                        f"model's job), got range [{t.min().item():.3g}, {t.max().item():.3g}]")
    return t


def _as_labels(y: np.ndarray, n: int, what: str) -> torch.Tensor:
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != n:
        raise UserError(f"{what} has {y.shape[0]} labels for {n} images; they must match")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise UserError(f"{what} must hold integer class labels, got dtype {y.dtype}")
    if y.min() < 0:
        raise UserError(f"{what} holds label {int(y.min())}; labels must be 0..num_classes-1")
    return torch.from_numpy(y.astype(np.int64))


def _split(x: torch.Tensor, y: torch.Tensor, val_size: int, seed: int):
    """Hold out ``val_size`` examples of the training set, stratified, with a fixed seed."""
    if val_size <= 0:
        return x, y, x[:0], y[:0]
    if val_size >= len(x):
        raise UserError(f"val_size {val_size} leaves no training data (training set has {len(x)} examples)")
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(x))
    counts = np.bincount(y.numpy())
    stratify = y.numpy() if counts[counts > 0].min() >= 2 and val_size >= len(counts) else None
    train_idx, val_idx = train_test_split(idx, test_size=val_size, random_state=seed, stratify=stratify)
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def _stats(x: torch.Tensor):
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()


def _subset(x: torch.Tensor, y: torch.Tensor, size: Optional[int], seed: int):
    """A fixed seeded subset of ``size`` examples (all when size is None or larger)."""
    if size is None or size >= len(x):
        return x, y
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:size].sort().values
    return x[idx], y[idx]


def from_arrays(name: str, x_train, y_train, x_test, y_test, val_size: int = 1000, seed: int = 0,
                train_size: Optional[int] = None, test_size: Optional[int] = None,
                num_classes: Optional[int] = None) -> Dataset:
    """Build a :class:`Dataset` from numpy arrays, checking shapes, dtypes, ranges and labels."""
    xtr = _as_images(np.asarray(x_train), f"{name} x_train")
    xte = _as_images(np.asarray(x_test), f"{name} x_test")
    ytr = _as_labels(y_train, len(xtr), f"{name} y_train")
    yte = _as_labels(y_test, len(xte), f"{name} y_test")
    if xtr.shape[1:] != xte.shape[1:]:
        raise UserError(f"{name}: x_train images are {tuple(xtr.shape[1:])} but x_test images are "
                        f"{tuple(xte.shape[1:])}; they must match")
    found = int(max(ytr.max(), yte.max())) + 1
    if num_classes is None and int(yte.max()) > int(ytr.max()):
        # classes are counted from the labels; a test label never seen in training is almost surely a mistake
        raise UserError(f"{name} y_test holds label {int(yte.max())}, but y_train only has labels "
                        f"0..{int(ytr.max())}; labels must be 0..num_classes-1 in both")
    classes = num_classes or found
    if found > classes:
        raise UserError(f"{name} holds label {found - 1}; labels must be 0..{classes - 1}")
    if classes < 2:
        raise UserError(f"{name} has a single class; classification needs at least 2")
    xtr, ytr = _subset(xtr, ytr, None if train_size is None else train_size + val_size, seed)
    xte, yte = _subset(xte, yte, test_size, seed)
    xtr, ytr, xva, yva = _split(xtr, ytr, val_size, seed)
    mean, std = _stats(xtr)
    return Dataset(name, xtr, ytr, xva, yva, xte, yte, classes, mean, std)


def load_digits_dataset(val_size: int = 200, test_size: int = 397, seed: int = 0, **_) -> Dataset:
    """scikit-learn's 8×8 digits (1797 images): 1200 train / 200 val / 397 test, stratified, fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=seed,
                                                        stratify=y)
    return from_arrays("digits", x_train, y_train, x_test, y_test, val_size=val_size, seed=seed,
                       num_classes=10)


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def read_npz(path: Path, verify: Optional[str] = None) -> dict:
    """The four arrays of an ``.npz`` archive, never unpickling; ``verify`` names a checksum table."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in archive.files]
            if missing:
                raise UserError(f"{path} lacks array(s) {', '.join(missing)}; an .npz needs x_train, y_train, "
                                f"x_test, y_test")
            arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except UserError:
        raise
    except Exception as exc:  # zip errors, pickled object arrays, truncated files
        raise UserError(f"cannot read {path} as an .npz archive of arrays ({type(exc).__name__}: {exc})") from None
    if verify:
        for key, expected in ARRAY_SHA256[verify].items():
            if _sha256(arrays[key]) != expected:
                raise UserError(f"{path}: array {key} differs from the exact {verify} copy (sha256 mismatch); "
                                f"re-copy it or pass it as a custom --dataset path.npz")
    return arrays


class _CifarUnpickler(pickle.Unpickler):
    """Allows only what a CIFAR-10 python batch holds (numpy arrays, lists, bytes): nothing that runs code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_pickles(folder: Path) -> dict:
    """The official ``cifar-10-batches-py`` folder (data_batch_1..5, test_batch) → arrays (N, 32, 32, 3)."""
    folder = Path(folder)

    def batch(name: str):
        path = folder / name
        if not path.is_file():
            raise UserError(f"CIFAR-10 folder {str(folder)!r} lacks {name}; expected data_batch_1..5 and test_batch")
        try:
            with open(path, "rb") as f:
                d = _CifarUnpickler(f, encoding="bytes").load()
            data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            return data, np.asarray(d[b"labels"], dtype=np.int64)
        except Exception as exc:
            raise UserError(f"cannot read CIFAR-10 batch {path} ({type(exc).__name__}: {exc})") from None

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = batch("test_batch")
    return {"x_train": np.concatenate([p[0] for p in parts]), "y_train": np.concatenate([p[1] for p in parts]),
            "x_test": x_test, "y_test": y_test}


def load_dataset(name: str = "digits", data_dir: Optional[str] = None, val_size: Optional[int] = None,
                 train_size: Optional[int] = None, test_size: Optional[int] = None, seed: int = 0,
                 verify: bool = True) -> Dataset:
    """Load a named dataset, an ``.npz`` path, or a CIFAR-10 pickle folder, with a fixed split."""
    name = str(name)
    if name == "digits":
        kw = {} if val_size is None else {"val_size": val_size}
        data = load_digits_dataset(seed=seed, **kw)
        if train_size is not None or test_size is not None:
            xtr, ytr = _subset(data.x_train, data.y_train, train_size, seed)
            xte, yte = _subset(data.x_test, data.y_test, test_size, seed)
            data = replace(data, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
        return data
    val = 1000 if val_size is None else val_size
    options = dict(val_size=val, seed=seed, train_size=train_size, test_size=test_size)
    path = Path(name)
    if name.endswith(".npz") or path.is_file():
        return from_arrays(path.stem, **read_npz(path), **options)
    if path.is_dir():
        return from_arrays("cifar10", **read_cifar_pickles(path), num_classes=10, **options)
    if name not in NAMED:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(NAMED)}, a path to an .npz "
                        f"(x_train, y_train, x_test, y_test) or a CIFAR-10 python folder")
    folder = Path(data_dir) if data_dir else default_data_dir()
    if folder is None or not (folder / f"{name}.npz").is_file():
        where = str(folder) if folder else "$ARMOR_DATA_DIR, ./data or ../shared/data"
        raise UserError(f"dataset {name!r} needs {name}.npz in {where}; set ARMOR_DATA_DIR or --data-dir")
    arrays = read_npz(folder / f"{name}.npz", verify=name if verify else None)
    return from_arrays(name, **arrays, num_classes=10, **options)
