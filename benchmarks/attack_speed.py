"""armor PGD-10 vs a minimal hand-written PGD loop: same model, same data, side by side in one run.

    python benchmarks/attack_speed.py [--batch 256] [--repeats 15] [--device cpu]

Prints the median time of each and the ratio armor / hand loop (goal ≤ 1.05). The two are timed
alternately (A B A B …) so drift in the machine's speed hits both alike.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from armor import ThreatModel, create_attack, create_model, load_dataset


def hand_pgd(model, x, y, eps, alpha, steps):
    """The loop people write by hand: random start, signed gradient, clip to the ball and the box."""
    delta = torch.empty_like(x).uniform_(-eps, eps)
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return x + delta


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    data = load_dataset("digits")
    x, y = data.x_train[: args.batch].to(device), data.y_train[: args.batch].to(device)
    model = create_model("small_cnn", data.input_shape, 10, data.mean, data.std).to(device).eval()
    eps = 0.2
    alpha = 2.5 * eps / args.steps
    threat = ThreatModel("linf", eps)
    variants = {
        "hand loop": lambda: hand_pgd(model, x, y, eps, alpha, args.steps),
        "armor pgd (train, final iterate)": lambda: create_attack("pgd", threat, steps=args.steps,
                                                                  keep_best=False)(model, x, y),
        "armor pgd (eval, keep_best)": lambda: create_attack("pgd", threat, steps=args.steps)(model, x, y),
    }
    for fn in variants.values():  # warm-up
        fn()
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn, device))
    base = statistics.median(times["hand loop"])
    print(f"PGD-{args.steps}, SmallCNN, digits batch {args.batch}, {device}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:34s} {med * 1000:8.2f} ms   ratio {med / base:.3f}")


if __name__ == "__main__":
    main()
