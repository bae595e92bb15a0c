"""Image folders: class sub-folders of PNG/JPEG files, decoded with Pillow.

``root/train/<class>/*.png`` and ``root/test/<class>/*.png`` (``val/`` is used as the test split when there is no
``test/``; ImageNet's layout) give a training set; a plain ``root/<class>/*.png`` folder is one split to evaluate
on. Classes are the sub-folder names in sorted order. Every image is converted to the first image's mode (grey
or RGB) and, with ``image_size``, resized so its shorter side is ``image_size`` and centre-cropped to a square;
without it every image must already have the same size.

Two ways to hold a split:

- **in memory** (the fast path): decoded once (in threads) into one tensor, like every other dataset;
- **streamed** (:class:`FolderTensor`), chosen when the decoded split would exceed ``memory_limit_mb``: a
  tensor-like object that decodes the images it is indexed with. The training loop feeds it through a
  ``DataLoader`` with worker processes and a batch sampler built from armor's own seeded permutation (so a streamed
  run takes exactly the batches an in-memory run takes); under torchrun each rank decodes only its own shard of
  every global batch. Crop/flip augmentation happens on the device after transfer, as for in-memory data.
"""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..errors import UserError

log = logging.getLogger("armor")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


def _class_dirs(root: Path) -> List[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def is_image_folder(path: Path) -> bool:
    """A folder of class sub-folders holding images (or with train/ and test|val/ splits of them)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / "train").is_dir() and ((path / "test").is_dir() or (path / "val").is_dir()):
        return True
    classes = _class_dirs(path)
    return bool(classes) and any(_images_in(c)[:1] for c in classes[:3])


@dataclass
class ImageFiles:
    """The files of one split with their labels, and how to decode them."""

    files: List[Path]
    labels: np.ndarray
    classes: List[str]
    mode: str                 # Pillow mode every image is converted to: "L" or "RGB"
    size: Tuple[int, int]     # (height, width) after decoding

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (1 if self.mode == "L" else 3, *self.size)

    def decode(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 (C, H, W)."""
        from PIL import Image

        try:
            with Image.open(self.files[i]) as img:
                img = img.convert(self.mode)
                if img.size[::-1] != self.size:
                    img = _fit(img, self.size)
                a = np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot decode image {str(self.files[i])!r}: {exc}") from None
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    def decode_many(self, indices: Sequence[int], threads: int = 0) -> np.ndarray:
        indices = [int(i) for i in indices]
        out = np.empty((len(indices), *self.shape), dtype=np.uint8)
        if threads > 1 and len(indices) > 8:
            with ThreadPoolExecutor(threads) as pool:
                for k, a in enumerate(pool.map(self.decode, indices)):
                    out[k] = a
        else:
            for k, i in enumerate(indices):
                out[k] = self.decode(i)
        return out

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for f in self.files:
            st = f.stat()
            h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(self.labels.tobytes())
        return h.hexdigest()[:16]


def _fit(img, size: Tuple[int, int]):
    """Resize so the shorter side matches, then centre-crop to ``size`` (the fixed-size view every image gets)."""
    from PIL import Image

    target_h, target_w = size
    w, h = img.size
    scale = max(target_w / w, target_h / h)
    img = img.resize((max(target_w, round(w * scale)), max(target_h, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - target_w) // 2, (h - target_h) // 2
    return img.crop((left, top, left + target_w, top + target_h))


def scan_split(root: Path, image_size: Optional[int], classes: Optional[List[str]] = None) -> ImageFiles:
    """The images of ``root/<class>/...``; ``classes`` fixes the label order (the training split's)."""
    from PIL import Image

    found = [p.name for p in _class_dirs(root)]
    classes = classes or found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise UserError(f"{str(root)!r} has class folder {unknown[0]!r}, which the training split does not have")
    files: List[Path] = []
    labels: List[int] = []
    for label, name in enumerate(classes):
        if not (root / name).is_dir():
            continue
        images = _images_in(root / name)
        files += images
        labels += [label] * len(images)
    if not files:
        raise UserError(f"image folder {str(root)!r} holds no images (expected class sub-folders of "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))} files)")
    if len(classes) < 2:
        raise UserError(f"image folder {str(root)!r} has a single class folder; classification needs at least 2")
    try:
        with Image.open(files[0]) as first:
            mode = "L" if first.mode in ("L", "1", "I;16", "I", "F") else "RGB"
            size = first.size[::-1]
    except OSError as exc:
        raise UserError(f"cannot decode image {str(files[0])!r}: {exc}") from None
    if image_size is not None:
        size = (int(image_size), int(image_size))
    else:  # every image must have the first one's size; say which does not (checking headers only)
        for f in files[1:]:
            with Image.open(f) as img:
                if img.size[::-1] != size:
                    raise UserError(f"{str(f)!r} is {img.size[0]}×{img.size[1]} but {str(files[0])!r} is "
                                    f"{size[1]}×{size[0]}; give image_size to resize and centre-crop them all")
    return ImageFiles(files, np.asarray(labels, dtype=np.int64), list(classes), mode, tuple(size))


class FolderTensor:
    """A split of an image folder that behaves like an (N, C, H, W) float tensor in [0, 1], decoded on demand.

    Indexing with a slice or an index tensor decodes those images (in threads) and returns a real tensor on
    ``device``. :meth:`loader` streams batches through a ``DataLoader`` with worker processes."""

    def __init__(self, images: ImageFiles, index: Optional[np.ndarray] = None, device: torch.device | str = "cpu",
                 threads: int = 0):
        self.images = images
        self.index = np.arange(len(images.files)) if index is None else np.asarray(index)
        self.device = torch.device(device)
        self.threads = threads or min(8, os.cpu_count() or 1)
        self.dtype = torch.float32

    # -- what code that expects a tensor uses ---------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), *self.images.shape))

    def __len__(self) -> int:
        return len(self.index)

    def dim(self) -> int:
        return 4

    def to(self, device: torch.device | str, *args, **kwargs) -> "FolderTensor":
        return FolderTensor(self.images, self.index, device, self.threads)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            picked = self.index[key]
        else:
            picked = self.index[torch.as_tensor(key).cpu().numpy()]
        batch = self.images.decode_many(picked, self.threads)
        return torch.from_numpy(batch).to(self.device).float().div_(255.0)

    def rows(self, key: slice) -> "FolderTensor":
        """A lazy view of some rows (``x[a:b]`` decodes them; ``x.rows(slice(a, b))`` does not)."""
        return FolderTensor(self.images, self.index[key], self.device, self.threads)

    def fingerprint(self) -> str:
        return hashlib.sha256((self.images.fingerprint() + str(self.index.tolist())).encode()).hexdigest()[:16]

    # -- streaming ------------------------------------------------------------------------------------------------
    def loader(self, batches: List[List[int]], workers: int) -> Iterator[torch.Tensor]:
        """The given batches (positions in this split), decoded by ``workers`` processes, each as a float tensor on
        this split's device, in order."""
        from torch.utils.data import DataLoader

        dataset = _Decode(self.images, self.index)
        # its own generator: starting the loader must not draw from the global RNG the attacks use
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=_stack,
                            persistent_workers=False, pin_memory=self.device.type == "cuda",
                            prefetch_factor=4 if workers else None, generator=torch.Generator().manual_seed(0))
        for batch in loader:
            yield batch.to(self.device, non_blocking=True).float().div_(255.0)


class _Decode(torch.utils.data.Dataset):
    def __init__(self, images: ImageFiles, index: np.ndarray):
        self.images, self.index = images, index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images.decode(int(self.index[i]))


def _stack(items: List[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(items))


def folder_splits(root: Path, image_size: Optional[int]) -> Tuple[ImageFiles, Optional[ImageFiles]]:
    """(train, test) of a folder with train/ and test/ (or val/); (the folder itself, None) for a plain one."""
    root = Path(root)
    if (root / "train").is_dir():
        test_dir = root / "test" if (root / "test").is_dir() else root / "val"
        if not test_dir.is_dir():
            raise UserError(f"image folder {str(root)!r} has train/ but no test/ or val/ split")
        train = scan_split(root / "train", image_size)
        test = scan_split(test_dir, image_size, train.classes)
        if test.shape != train.shape:
            raise UserError(f"{str(test_dir)!r} images are {test.shape} but train/ images are {train.shape}; give "
                            f"image_size")
        return train, test
    return scan_split(root, image_size), None


def decoded_bytes(images: ImageFiles) -> int:
    c, h, w = images.shape
    return len(images.files) * c * h * w * 4
