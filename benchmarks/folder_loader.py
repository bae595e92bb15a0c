"""Images per second through the streamed image-folder loader vs the same images held in memory (informational).

    python benchmarks/folder_loader.py                      # MNIST subset from ../shared/data (else digits), 28×28
    python benchmarks/folder_loader.py --n 5000 --size 64 --workers 0 2 4

Writes N uint8 images as PNG class folders (train/ + test/) in a temporary folder, then times one pass of
training-sized batches (the trainer's own batch lists, shuffled) through ``FolderTensor.loader`` with each worker
count, and through in-memory indexing of the same images, side by side on this machine. Decoding is the cost the
streamed path pays so that datasets larger than memory can be trained at all.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from armor.data.datasets import default_data_dir, load_dataset


def images(n: int, size: int):
    folder = default_data_dir()
    if folder is not None and (folder / "mnist.npz").is_file():
        with np.load(folder / "mnist.npz") as f:
            x, y = f["x_train"][:n], f["y_train"][:n]
        source = "mnist"
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = (d.images * 15).astype(np.uint8), d.target
        reps = -(-n // len(x))
        x, y = np.concatenate([x] * reps)[:n], np.concatenate([y] * reps)[:n]
        source = "digits"
    if size != x.shape[1]:
        x = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR)) for a in x])
    return source, x, y


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = p.parse_args()
    source, x, y = images(args.n, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for split, (xs, ys) in {"train": (x, y), "test": (x[:64], y[:64])}.items():
            for i, (img, label) in enumerate(zip(xs, ys)):
                (root / split / str(label)).mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(root / split / str(label) / f"{i:06d}.png")
        held = load_dataset(str(root), val_size=0)
        streamed = load_dataset(str(root), val_size=0, memory_limit_mb=0.001)
        order = torch.randperm(len(held.x_train), generator=torch.Generator().manual_seed(0))
        batches = [order[i:i + args.batch] for i in range(0, len(order) - args.batch + 1, args.batch)]
        seen = len(batches) * args.batch
        rows = []
        start = time.perf_counter()
        for idx in batches:
            held.x_train[idx].sum()
        rows.append(("in memory", seen / (time.perf_counter() - start)))
        for w in args.workers:
            start = time.perf_counter()
            for batch in streamed.x_train.loader([b.tolist() for b in batches], workers=w):
                batch.sum()
            rows.append((f"streamed, {w} workers", seen / (time.perf_counter() - start)))
    print(f"{source} {args.size}×{args.size}, {args.n} PNG images, batch {args.batch}, torch threads "
          f"{torch.get_num_threads()}:")
    base = rows[0][1]
    for name, rate in rows:
        print(f"  {name:<20} {rate:10.0f} images/s   ({rate / base:.4f}× in memory)")


if __name__ == "__main__":
    main()
