"""Datasets as tensors in [0, 1], shaped (N, C, H, W), with fixed seeded train/val/test splits.

``digits`` (scikit-learn's ``load_digits``) ships with the package and is the default. MNIST,
Fashion-MNIST and CIFAR-10 are read from ``.npz`` archives (``x_train, y_train, x_test, y_test``) in
the data folder, or CIFAR-10 from the python-pickle folder users already have.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from ..errors import UserError, opt

log = logging.getLogger("armor")

NAMED = ("digits", "breast_cancer", "mnist", "fashion_mnist", "cifar10")

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
    """Train/val/test tensors (float32, int64 labels), the input box and the statistics models normalise by.

    Images are (N, C, H, W) in the box [0, 1]; feature vectors are (N, F) in a box per feature (``lower`` and
    ``upper``, one value per feature) — the threat model's box. ``immutable`` lists features an attacker
    cannot change (from the data file, or the config's ``immutable``)."""

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
    lower: Any = 0.0
    upper: Any = 1.0
    immutable: tuple = ()

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    @property
    def is_images(self) -> bool:
        return len(self.input_shape) == 3

    def to(self, device: torch.device | str) -> "Dataset":
        moved = {k: getattr(self, k).to(device) for k in
                 ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        return replace(self, **moved)

    def describe(self) -> str:
        shape = "×".join(map(str, self.input_shape)) + ("" if self.is_images else " features")
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_val)} val / {len(self.x_test)} test, "
                f"{shape}, {self.num_classes} classes")

    def meta(self) -> Dict[str, Any]:
        """What a checkpoint records about the data (enough to rebuild the model and its threat model)."""
        return {"name": self.name, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "mean": list(self.mean), "std": list(self.std), "lower": _plain(self.lower),
                "upper": _plain(self.upper), "immutable": list(self.immutable)}


def _plain(bound: Any) -> Any:
    return bound if isinstance(bound, float) else [float(v) for v in bound]


def default_data_dir() -> Optional[Path]:
    """``$ARMOR_DATA_DIR``, else ``./data``, else the ``shared/data`` folder beside the checkout."""
    candidates = [os.environ.get("ARMOR_DATA_DIR"), "data", "../shared/data",
                  Path(__file__).resolve().parents[3] / "shared" / "data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def _as_features(x: np.ndarray, what: str) -> torch.Tensor:
    """A (N, F) array of numbers → float32 (N, F); any finite range (the box comes from the data)."""
    if x.shape[0] == 0:
        raise UserError(f"{what} is empty; it needs at least one example")
    if x.dtype == object or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise UserError(f"{what} must hold numbers, got dtype {x.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not torch.isfinite(t).all():
        raise UserError(f"{what} holds NaN or infinite values; every feature must be a finite number")
    return t


def _as_inputs(x: np.ndarray, what: str) -> torch.Tensor:
    """Feature vectors (N, F) or images (see :func:`_as_images`)."""
    return _as_features(x, what) if x.ndim == 2 else _as_images(x, what)


def _as_images(x: np.ndarray, what: str) -> torch.Tensor:
    """uint8 0..255 or float 0..1 images of shape (N,H,W), (N,H,W,C) or (N,C,H,W) → float (N,C,H,W)."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)
    else:
        raise UserError(f"{what} must be feature vectors shaped (N, F) or images shaped (N,H,W), (N,H,W,C) or "
                        f"(N,C,H,W), got shape {x.shape}")
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


def _split_index(y: torch.Tensor, val_size: int, seed: int):
    """(train positions, val positions): ``val_size`` examples held out of the training set, stratified, seeded."""
    n = len(y)
    if val_size <= 0:
        return np.arange(n), np.arange(0)
    if val_size >= n:
        raise UserError(f"val_size {val_size} leaves no training data (training set has {n} examples)")
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    counts = np.bincount(y.numpy())
    stratify = y.numpy() if counts[counts > 0].min() >= 2 and val_size >= len(counts) else None
    train_idx, val_idx = train_test_split(idx, test_size=val_size, random_state=seed, stratify=stratify)
    return np.sort(train_idx), np.sort(val_idx)


def _split(x: torch.Tensor, y: torch.Tensor, val_size: int, seed: int):
    """Hold out ``val_size`` examples of the training set, stratified, with a fixed seed."""
    train_idx, val_idx = _split_index(y, val_size, seed)
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def _stats(x: torch.Tensor):
    """Per-channel (images) or per-feature (vectors) mean and std of the training inputs."""
    dims = (0, 2, 3) if x.dim() == 4 else (0,)
    return x.mean(dim=dims).tolist(), x.std(dim=dims).clamp_min(1e-3).tolist()


def _subset_index(n: int, size: Optional[int], seed: int) -> Optional[torch.Tensor]:
    """Sorted positions of a fixed seeded subset of ``size`` of ``n`` examples (None: all of them)."""
    if size is None or size >= n:
        return None
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:size].sort().values


def _subset(x: torch.Tensor, y: torch.Tensor, size: Optional[int], seed: int):
    """A fixed seeded subset of ``size`` examples (all when size is None or larger)."""
    idx = _subset_index(len(x), size, seed)
    return (x, y) if idx is None else (x[idx], y[idx])


def from_arrays(name: str, x_train, y_train, x_test, y_test, val_size: int = 1000, seed: int = 0,
                train_size: Optional[int] = None, test_size: Optional[int] = None,
                num_classes: Optional[int] = None, lower: Any = None, upper: Any = None,
                immutable: Any = ()) -> Dataset:
    """Build a :class:`Dataset` from numpy arrays, checking shapes, dtypes, ranges and labels.

    Images are (N, H, W), (N, H, W, C) or (N, C, H, W), uint8 0..255 or float in [0, 1]. Feature vectors are
    (N, F) of any finite numbers; their box is ``lower``/``upper`` (one value per feature) when given, else the
    smallest and largest value of each feature over the training and test data."""
    xtr = _as_inputs(np.asarray(x_train), f"{name} x_train")
    xte = _as_inputs(np.asarray(x_test), f"{name} x_test")
    ytr = _as_labels(y_train, len(xtr), f"{name} y_train")
    yte = _as_labels(y_test, len(xte), f"{name} y_test")
    if xtr.shape[1:] != xte.shape[1:]:
        raise UserError(f"{name}: x_train images are {tuple(xtr.shape[1:])} but x_test images are "
                        f"{tuple(xte.shape[1:])}; they must match")
    found = int(max(ytr.max(), yte.max())) + 1
    if num_classes is None:
        present = set(torch.unique(torch.cat([ytr, yte])).tolist())
        missing = sorted(set(range(found)) - present)
        if missing:  # a stray label 12 among 0..9 would make a 13-class model without a word
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise UserError(f"{name} labels must be the contiguous classes 0..C-1: label {found - 1} appears but "
                            f"{shown} never do; fix the labels, or set num_classes: {found} if that is intended")
    if num_classes is None and int(yte.max()) > int(ytr.max()):
        # classes are counted from the labels; a test label never seen in training is almost surely a mistake
        raise UserError(f"{name} y_test holds label {int(yte.max())}, but y_train only has labels "
                        f"0..{int(ytr.max())}; labels must be 0..num_classes-1 in both")
    classes = num_classes or found
    if found > classes:
        raise UserError(f"{name} holds label {found - 1}; labels must be 0..{classes - 1}")
    if classes < 2:
        raise UserError(f"{name} has a single class; classification needs at least 2")
    box_lower, box_upper = 0.0, 1.0
    if xtr.dim() == 2:
        box_lower, box_upper = _feature_box(name, xtr, xte, lower, upper)
    elif lower is not None or upper is not None:
        raise UserError(f"{name}: per-feature bounds (lower/upper) are for feature vectors (N, F); images live in "
                        f"[0, 1]")
    immutable = tuple(int(i) for i in np.asarray(immutable if immutable is not None else ()).reshape(-1))
    if immutable and (min(immutable) < 0 or max(immutable) >= xtr[0].numel()):
        raise UserError(f"{name}: immutable feature index {max(immutable) if max(immutable) >= 0 else min(immutable)} "
                        f"is out of range 0..{xtr[0].numel() - 1}")
    xtr, ytr = _subset(xtr, ytr, None if train_size is None else train_size + val_size, seed)
    xte, yte = _subset(xte, yte, test_size, seed)
    xtr, ytr, xva, yva = _split(xtr, ytr, val_size, seed)
    mean, std = _stats(xtr)
    return Dataset(name, xtr, ytr, xva, yva, xte, yte, classes, mean, std, box_lower, box_upper, immutable)


def _feature_box(name: str, xtr: torch.Tensor, xte: torch.Tensor, lower: Any, upper: Any):
    features = xtr.shape[1]
    observed_lo = torch.minimum(xtr.min(0).values, xte.min(0).values)
    observed_hi = torch.maximum(xtr.max(0).values, xte.max(0).values)
    lo = observed_lo if lower is None else torch.as_tensor(np.asarray(lower, dtype=np.float32).reshape(-1))
    hi = observed_hi if upper is None else torch.as_tensor(np.asarray(upper, dtype=np.float32).reshape(-1))
    for what, bound in (("lower", lo), ("upper", hi)):
        if bound.numel() != features:
            raise UserError(f"{name}: {what} has {bound.numel()} values for {features} features; they must match")
    if lower is not None and bool((observed_lo < lo).any()):
        raise UserError(f"{name}: some inputs lie below the given lower bound (feature "
                        f"{int((observed_lo < lo).nonzero()[0])})")
    if upper is not None and bool((observed_hi > hi).any()):
        raise UserError(f"{name}: some inputs lie above the given upper bound (feature "
                        f"{int((observed_hi > hi).nonzero()[0])})")
    hi = torch.where(hi > lo, hi, lo + 1e-6)  # a constant feature still gets a (tiny) box
    return [float(v) for v in lo], [float(v) for v in hi]


def load_breast_cancer_dataset(val_size: int = 57, test_size: int = 114, seed: int = 0, **_) -> Dataset:
    """scikit-learn's breast-cancer data (569 × 30 features, 2 classes), min–max scaled per feature by the training
    split's range into [0, 1] (test values clipped), so ε is a fraction of each feature's range; the box is [0, 1]."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bc = load_breast_cancer()
    x, y = bc.data.astype(np.float32), bc.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    lo, hi = x_train.min(0), x_train.max(0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    x_train, x_test = (x_train - lo) / scale, np.clip((x_test - lo) / scale, 0.0, 1.0)
    return from_arrays("breast_cancer", x_train, y_train, x_test, y_test, val_size=val_size, seed=seed,
                       num_classes=2, lower=np.zeros(30), upper=np.ones(30))


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


OPTIONAL_ARRAYS = ("lower", "upper", "immutable")


def read_npz(path: Path, verify: Optional[str] = None) -> dict:
    """The four arrays of an ``.npz`` archive (plus optional ``lower``, ``upper``, ``immutable`` for feature
    data), never unpickling; ``verify`` names a checksum table."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {str(path)!r} does not exist")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise UserError(f"cannot read {path} as an .npz archive: it is not a zip file (an .npz is a zip of .npy "
                        f"arrays, written by numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in archive.files]
            if missing:
                raise UserError(f"{path} lacks array(s) {', '.join(missing)}; an .npz needs x_train, y_train, "
                                f"x_test, y_test")
            arrays = {k: archive[k] for k in ("x_train", "y_train", "x_test", "y_test", *OPTIONAL_ARRAYS)
                      if k in archive.files}
    except UserError:
        raise
    except Exception as exc:  # zip errors, pickled object arrays, truncated files
        text = " ".join(str(exc).split())
        if "allow_pickle" in text:
            text = "an array holds Python objects (dtype object), which armor refuses to unpickle"
        raise UserError(f"cannot read {path} as an .npz archive of arrays ({text[:200]})") from None
    if verify:
        for key, expected in ARRAY_SHA256[verify].items():
            if _sha256(arrays[key]) != expected:
                raise UserError(f"{path}: array {key} differs from the exact {verify} copy (sha256 mismatch); "
                                f"re-copy it or pass it as a custom {opt('dataset', 'path.npz')}")
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


#: decoded image folders larger than this are streamed from disk instead of held in memory
MEMORY_LIMIT_MB = 4096.0


def load_image_folder(root: Path, val_size: int = 1000, seed: int = 0, train_size: Optional[int] = None,
                      test_size: Optional[int] = None, image_size: Optional[int] = None,
                      memory_limit_mb: Optional[float] = None) -> Dataset:
    """An image folder with train/ and test/ (or val/) class sub-folders, split like every other dataset (the
    same seeded subsets and stratified validation split as :func:`from_arrays`), held in memory or streamed."""
    from .folder import FolderTensor, decoded_bytes, folder_splits

    train, test = folder_splits(root, image_size)
    if test is None:
        raise UserError(f"to train on image folder {str(root)!r} it needs train/ and test/ (or val/) class "
                        f"sub-folders; a plain class folder can be evaluated (armor eval --data)")
    limit = MEMORY_LIMIT_MB if memory_limit_mb is None else float(memory_limit_mb)
    ytr_all, yte_all = torch.from_numpy(train.labels), torch.from_numpy(test.labels)
    keep = _subset_index(len(ytr_all), None if train_size is None else train_size + val_size, seed)
    tr_pos = np.arange(len(ytr_all)) if keep is None else keep.numpy()
    te_keep = _subset_index(len(yte_all), test_size, seed)
    te_pos = np.arange(len(yte_all)) if te_keep is None else te_keep.numpy()
    fit, hold = _split_index(ytr_all[tr_pos], val_size, seed)
    tr_idx, va_idx = tr_pos[fit], tr_pos[hold]
    classes = len(train.classes)
    stream = (decoded_bytes(train) * len(tr_pos) / len(ytr_all) + decoded_bytes(test) * len(te_pos) / len(yte_all)
              > limit * 2 ** 20)
    name = Path(root).resolve().name
    if not stream:
        xtr = torch.from_numpy(train.decode_many(tr_idx, 8)).float().div_(255.0)
        xva = torch.from_numpy(train.decode_many(va_idx, 8)).float().div_(255.0)
        xte = torch.from_numpy(test.decode_many(te_pos, 8)).float().div_(255.0)
        mean, std = _stats(xtr)
    else:
        xtr, xva, xte = FolderTensor(train, tr_idx), FolderTensor(train, va_idx), FolderTensor(test, te_pos)
        mean, std = _streamed_stats(xtr, seed)
        log.info("%s: %d images would take %.0f MB decoded (> memory_limit_mb %.0f): streaming them from disk",
                 name, len(tr_pos) + len(te_pos), (decoded_bytes(train) + decoded_bytes(test)) / 2 ** 20, limit)
    return Dataset(name, xtr, ytr_all[tr_idx], xva, ytr_all[va_idx], xte, yte_all[te_pos], classes, mean, std)


def _streamed_stats(x, seed: int, limit: int = 50_000):
    """Per-channel mean/std of a streamed split: exact up to ``limit`` images, else from a seeded sample of that many."""
    n = len(x)
    picked = np.arange(n) if n <= limit else np.sort(
        torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].numpy())
    total = total_sq = None
    count = 0
    for start in range(0, len(picked), 1024):
        batch = x[torch.as_tensor(picked[start:start + 1024])].double()
        s, sq = batch.sum(dim=(0, 2, 3)), (batch ** 2).sum(dim=(0, 2, 3))
        total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)
        count += batch.shape[0] * batch.shape[2] * batch.shape[3]
    mean = total / count
    var = (total_sq / count - mean ** 2) * count / max(count - 1, 1)
    return mean.float().tolist(), var.clamp_min(0).sqrt().float().clamp_min(1e-3).tolist()


def load_dataset(name: str = "digits", data_dir: Optional[str] = None, val_size: Optional[int] = None,
                 train_size: Optional[int] = None, test_size: Optional[int] = None, seed: int = 0,
                 verify: bool = True, image_size: Optional[int] = None,
                 memory_limit_mb: Optional[float] = None, num_classes: Optional[int] = None) -> Dataset:
    """Load a named dataset, an ``.npz`` path, an image folder (train/ and test/ class sub-folders) or a
    CIFAR-10 pickle folder, with a fixed split."""
    name = str(name)
    embedded = {"digits": load_digits_dataset, "breast_cancer": load_breast_cancer_dataset}.get(name)
    if embedded is not None:  # scikit-learn's sets: their own default validation size, subsets drawn after
        kw = {} if val_size is None else {"val_size": val_size}
        data = embedded(seed=seed, **kw)
        if train_size is not None or test_size is not None:
            xtr, ytr = _subset(data.x_train, data.y_train, train_size, seed)
            xte, yte = _subset(data.x_test, data.y_test, test_size, seed)
            data = replace(data, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
        return data
    val = 1000 if val_size is None else val_size
    options = dict(val_size=val, seed=seed, train_size=train_size, test_size=test_size)
    path = Path(name)
    if name.endswith(".npz") or path.is_file():
        return from_arrays(path.stem, **read_npz(path), num_classes=num_classes, **options)
    if path.is_dir():
        from .folder import is_image_folder

        if not (path / "data_batch_1").is_file() and is_image_folder(path):
            return load_image_folder(path, image_size=image_size, memory_limit_mb=memory_limit_mb, **options)
        return from_arrays("cifar10", **read_cifar_pickles(path), num_classes=10, **options)
    if name not in NAMED:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(NAMED)}, a path to an .npz "
                        f"(x_train, y_train, x_test, y_test) or a CIFAR-10 python folder")
    folder = Path(data_dir) if data_dir else default_data_dir()
    if folder is None or not (folder / f"{name}.npz").is_file():
        where = str(folder) if folder else "$ARMOR_DATA_DIR, ./data or ../shared/data"
        raise UserError(f"dataset {name!r} needs {name}.npz in {where}; set ARMOR_DATA_DIR or {opt('data_dir', 'FOLDER')}")
    arrays = read_npz(folder / f"{name}.npz", verify=name if verify else None)
    return from_arrays(name, **arrays, num_classes=10, **options)
