"""The 15 CIFAR-10-C corruptions (Hendrycks & Dietterich 2019), 5 severities each, as batched tensor ops.

Pure tensor computation on ``(N, C, H, W)`` images in [0, 1] (C = 1 or 3, H and W ≥ 8), on the input's device;
output in [0, 1], same shape and dtype. Randomness comes from a ``torch.Generator`` on that device seeded from
``(seed, name, severity)``: the same call gives the same images on the same device (CPU and CUDA draw different
streams), and every model evaluated with one seed sees the same corrupted images. Nothing here runs a model, so
the evaluation (``armor.eval.corruptions``) and the report's example pictures both use it.

Severity parameters are CIFAR-10-C's (``make_cifar_c.py`` of hendrycks/robustness), written for 32×32 images.

**Image size.** Lengths in pixels — blur radii and sigmas (defocus, glass, motion, Gaussian blur), the glass
shuffle distance, and snow's flake size and streak length — are CIFAR's multiplied by
``s = max(1, min(H, W) / 32)``: a 224×224 image gets 7× longer kernels, so a corruption covers the same fraction
of the picture as on CIFAR-10. Images smaller than 32 (8×8 digits, 28×28 MNIST) keep CIFAR's kernels, which are
already about a pixel wide; shrinking them would make them sub-pixel, i.e. no corruption. Elastic transform's
parameters are fractions of the image side in the original (``IMSIZE · 0.08`` ...) and stay so at every size.
Zoom blur, pixelate, fog and frost are relative to the image by construction; noise, brightness, contrast and
JPEG act per pixel.

**Faithful to the original algorithm** (up to the random numbers, so not the same images as the CIFAR-10-C
files): gaussian_noise, shot_noise, impulse_noise, defocus_blur (the anti-aliased disk kernel), glass_blur,
zoom_blur, fog, brightness (the HSV value channel, as skimage's ``rgb2hsv``), contrast (per-channel mean),
elastic_transform (random affine, then a smoothed random displacement field, both bilinear), pixelate (Pillow's
BOX resampling, down and up) and jpeg_compression (Pillow, per image). Two details follow the code rather than
the paper: glass blur's "swap" of ``x[h, w]`` and a neighbour is, for RGB arrays in numpy, a copy of the
neighbour into ``x[h, w]`` (the tuple swap of two views), with offsets in ``[-d, d-1]`` (``randint``'s open
upper end) — reproduced here as one parallel gather, which is exactly that sequence of copies for ``d = 1`` (all
images under 48 px; at larger sizes the scaled ``d`` uses the parallel version); and the fog fractal is the same
diamond-square plasma (its ``wibble²`` noise amplitude included) on the next power-of-two square, cropped.

**Re-implemented without ImageMagick**: motion_blur and snow's streaks use ImageMagick's ``MotionBlurImage``
in the original (through Wand). Here its kernel is re-implemented: a one-sided Gaussian
``exp(-i²/2σ²), i = 0 … 2⌈radius⌉``, normalised, sampled at integer offsets ``⌈i·cos θ - ½⌉, ⌈i·sin θ - ½⌉``
along the angle, edge pixels repeated — without the original's round trip through 8-bit PNG (no quantisation).

**Procedural stand-in**: frost blends each image with a random crop of one of several photographs of frost in
the original (``c0·x + c1·frost``). armor ships no image assets, so frost is a seeded texture instead
(:func:`frost_texture`): thin bright ridges (ridged value noise at four scales, from a quarter of the image side
down to two pixels) over a soft cloud, bluish white for RGB, mean ≈ 0.35, mixed with the same weights. It looks
like cracked ice, not like the photographs, so frost numbers are not comparable with CIFAR-10-C's frost.

Everywhere, the original rounds to 8 bits on the way (PIL images, PNG, ``np.uint8`` of the result); armor keeps
floats, except for the two explicit ``uint8`` steps inside glass blur and snow, and JPEG, which needs 8 bits.

**Severity order.** CIFAR-10-C's parameters do not make every type change pixels more at every step: its elastic
transform trades a shrinking random affine (points moved by up to 8 % of the side at severity 1, 3 % at 5) for a
growing local warp, so its pixel change falls while the local distortion rises; frost dims the image more as it
adds more texture (the image's share falls at every step, the pixel change need not); glass blur shuffles once at
severities 1–3 (with more blur) and twice at 4–5; motion blur's severities 3 and 4 have the same kernel (σ = 2),
differing only in their random angle. ``tests/test_corruptions.py`` measures each of these.

``gaussian_blur`` (one of CIFAR-10-C's four extra corruptions) is kept as an extra: ``corrupt`` accepts it, but it
is not in the 15 of :data:`CORRUPTIONS` that evaluations and mCE use.
"""
from __future__ import annotations

import io
import math
import zlib
from typing import Callable, Dict, Sequence, Tuple

import torch
import torch.nn.functional as F

from .errors import UserError

SEVERITIES = (1, 2, 3, 4, 5)
Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]


# -- helpers ---------------------------------------------------------------------------------------------------------
def _wide(x: torch.Tensor) -> torch.dtype:
    """float64 for kernels and coordinates, except on MPS (which has none)."""
    return torch.float32 if x.device.type == "mps" else torch.float64


def _scale(x: torch.Tensor) -> float:
    """How many times longer than CIFAR's (32×32) a length in pixels is on ``x`` (never below 1)."""
    return max(1.0, min(x.shape[2], x.shape[3]) / 32.0)


def _rand(x: torch.Tensor, shape: Sequence[int], gen: torch.Generator) -> torch.Tensor:
    return torch.rand(tuple(shape), generator=gen, device=x.device, dtype=x.dtype)


def _randn(x: torch.Tensor, shape: Sequence[int], gen: torch.Generator) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=gen, device=x.device, dtype=x.dtype)


def _pad(x: torch.Tensor, r: int, mode: str) -> torch.Tensor:
    """Pad H and W by ``r``: ``nearest`` (edge repeated), ``mirror`` (c b | a b c, OpenCV's REFLECT_101) or
    ``symmetric`` (b a | a b, scipy's ``reflect``); mirror/symmetric fall back to the edge where the image is
    too small to reflect."""
    if r == 0:
        return x
    h, w = x.shape[-2:]
    if mode == "nearest" or (mode == "mirror" and r >= min(h, w)) or (mode == "symmetric" and r > min(h, w)):
        return F.pad(x, (r, r, r, r), mode="replicate")
    if mode == "mirror":
        return F.pad(x, (r, r, r, r), mode="reflect")
    x = torch.cat([x[..., :r, :].flip(-2), x, x[..., h - r:, :].flip(-2)], dim=-2)
    return torch.cat([x[..., :r].flip(-1), x, x[..., w - r:].flip(-1)], dim=-1)


def _separable(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlate every channel with ``kernel`` along H, then along W (odd length, centred)."""
    r = kernel.numel() // 2
    n, c, h, w = x.shape
    y = _pad(x.reshape(n * c, 1, h, w), r, mode)
    y = F.conv2d(y, kernel.reshape(1, 1, -1, 1))
    y = F.conv2d(y, kernel.reshape(1, 1, 1, -1))
    return y.reshape(n, c, h, w)


def _gaussian_kernel(sigma: float, radius: int, like: torch.Tensor) -> torch.Tensor:
    grid = torch.arange(-radius, radius + 1, device=like.device, dtype=like.dtype)
    k = torch.exp(-grid ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def _gaussian(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """scipy's ``gaussian_filter`` over H and W (what skimage's ``gaussian`` calls): radius ``int(truncate·σ + ½)``."""
    radius = int(truncate * sigma + 0.5)
    if sigma <= 0 or radius == 0:
        return x
    return _separable(x, _gaussian_kernel(sigma, radius, x), mode)


def _gather_shifted(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``out[n, c, i, j] = x[n, c, rows[n, i, j], cols[n, i, j]]`` (integer indices, already in range)."""
    n, c, h, w = x.shape
    flat = (rows * w + cols).reshape(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, flat).reshape(n, c, h, w)


def _motion_blur(x: torch.Tensor, radius: float, sigma: float, angle_deg: torch.Tensor) -> torch.Tensor:
    """ImageMagick's MotionBlurImage, one angle per image: a one-sided Gaussian along the angle, edge repeated."""
    n, c, h, w = x.shape
    width = 2 * math.ceil(radius) + 1 if radius > 0 else 1
    i = torch.arange(width, device=x.device, dtype=_wide(x))
    weights = torch.exp(-i ** 2 / (2 * sigma ** 2))
    keep = int((weights > 1e-9 * weights[0]).sum())  # the tail adds nothing but work
    weights = (weights / weights.sum())[:keep].to(x.dtype)
    theta = angle_deg.to(_wide(x)) * math.pi / 180
    ox = torch.ceil(i[:keep, None] * torch.cos(theta)[None] - 0.5).long()  # (keep, N) column offsets
    oy = torch.ceil(i[:keep, None] * torch.sin(theta)[None] - 0.5).long()
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    out = torch.zeros_like(x)
    for k in range(keep):
        rows = (ys + oy[k].view(n, 1, 1)).clamp(0, h - 1).expand(n, h, w)
        cols = (xs + ox[k].view(n, 1, 1)).clamp(0, w - 1).expand(n, h, w)
        out += weights[k] * _gather_shifted(x, rows, cols)
    return out


def _linear_matrix(src: torch.Tensor, n_in: int) -> torch.Tensor:
    """The (len(src), n_in) matrix of linear interpolation at coordinates ``src`` (in [0, n_in - 1])."""
    lo = src.floor().clamp(0, n_in - 1)
    frac = src - lo
    lo = lo.long()
    hi = (lo + 1).clamp(max=n_in - 1)
    m = torch.zeros(len(src), n_in, dtype=src.dtype, device=src.device)
    rows = torch.arange(len(src), device=src.device)
    m.index_put_((rows, lo), 1 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m


def _clipped_zoom_matrix(n: int, zoom: float, like: torch.Tensor) -> torch.Tensor:
    """One axis of CIFAR-10-C's ``clipped_zoom``: crop the centre ``⌈n/zoom⌉`` pixels, zoom them back with scipy's
    order-1 ``zoom`` (corners aligned, output ``round(crop·zoom)`` long), keep the centre ``n``."""
    crop = int(math.ceil(n / zoom))
    top = (n - crop) // 2
    length = int(round(crop * zoom))
    trim = (length - n) // 2
    k = torch.arange(n, device=like.device, dtype=_wide(like)) + trim
    src = k * (crop - 1) / max(length - 1, 1) + top
    return _linear_matrix(src, n).to(like.dtype)


def _clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    return _clipped_zoom_matrix(h, zoom, x) @ x @ _clipped_zoom_matrix(w, zoom, x).T


def _box_matrix(n_in: int, n_out: int, like: torch.Tensor) -> torch.Tensor:
    """Pillow's BOX resampling along one axis as a (n_out, n_in) matrix: output pixel ``i`` averages the input
    pixels whose centres fall in its span (for enlarging, the one nearest pixel)."""
    scale = n_in / n_out
    support = 0.5 * max(scale, 1.0)
    centre = (torch.arange(n_out, dtype=torch.float64) + 0.5) * scale
    pos = (torch.arange(n_in, dtype=torch.float64) + 0.5)[None] - centre[:, None]  # input centre - output centre
    t = pos / max(scale, 1.0)
    lo = torch.floor(centre - support + 0.5)[:, None]
    hi = torch.floor(centre + support + 0.5)[:, None]
    j = torch.arange(n_in, dtype=torch.float64)[None]
    m = ((t > -0.5) & (t <= 0.5) & (j >= lo) & (j < hi)).to(torch.float64)
    m = m / m.sum(1, keepdim=True).clamp(min=1)
    return m.to(device=like.device, dtype=like.dtype)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


# -- noise -----------------------------------------------------------------------------------------------------------
def gaussian_noise(x, severity, gen):
    sigma = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    return x + sigma * _randn(x, x.shape, gen)


def shot_noise(x, severity, gen):
    photons = (500.0, 250.0, 100.0, 75.0, 50.0)[severity - 1]
    return torch.poisson(x.clamp(0, 1) * photons, generator=gen) / photons


def impulse_noise(x, severity, gen):
    amount = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    flipped = _rand(x, x.shape, gen) <= amount
    salt = (_rand(x, x.shape, gen) <= 0.5).to(x.dtype)
    return torch.where(flipped, salt, x)


# -- blur ------------------------------------------------------------------------------------------------------------
def defocus_blur(x, severity, gen):
    """A disk of ``radius`` anti-aliased by a small Gaussian (``alias`` σ), filtered with mirrored borders."""
    radius, alias = (0.3, 0.4, 0.5, 1.0, 1.5)[severity - 1], (0.4, 0.5, 0.6, 0.2, 0.1)[severity - 1]
    s = _scale(x)
    radius, alias = radius * s, alias * s
    aa = math.ceil(s)  # half-width of the anti-aliasing blur: 3×3 on CIFAR, as in the original
    r = math.ceil(radius) + aa
    grid = torch.arange(-r, r + 1, device=x.device, dtype=_wide(x))
    disk = ((grid[:, None] ** 2 + grid[None] ** 2) <= radius ** 2).to(_wide(x))
    disk = disk / disk.sum()
    g = torch.exp(-torch.arange(-aa, aa + 1, device=x.device, dtype=_wide(x)) ** 2 / (2 * alias ** 2))
    g = g / g.sum()
    kernel = F.conv2d(F.pad(disk[None, None], (aa, aa, aa, aa)), (g[:, None] * g[None])[None, None])[0, 0]
    kernel = kernel.to(x.dtype)
    n, c, h, w = x.shape
    y = _pad(x.reshape(n * c, 1, h, w), r, "mirror")
    return F.conv2d(y, kernel[None, None]).reshape(n, c, h, w)


def glass_blur(x, severity, gen):
    """Blur, move every inner pixel to a random neighbour's value (``iterations`` times), blur again."""
    sigma, delta, iterations = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))[severity - 1]
    s = _scale(x)
    sigma, d = sigma * s, max(1, round(delta * s))
    x = torch.floor(_gaussian(x, sigma).clamp(0, 1) * 255) / 255  # the original goes through uint8 here
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1).expand(n, h, w)
    cols = torch.arange(w, device=x.device).view(1, 1, w).expand(n, h, w)
    inner = ((rows > d) & (rows <= h - d) & (cols > d) & (cols <= w - d))
    for _ in range(iterations):
        shift = torch.randint(-d, d, (2, n, h, w), generator=gen, device=x.device)
        src_r = torch.where(inner, rows + shift[0], rows)
        src_c = torch.where(inner, cols + shift[1], cols)
        x = _gather_shifted(x, src_r, src_c)
    return _gaussian(x, sigma)


def motion_blur(x, severity, gen):
    radius, sigma = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))[severity - 1]
    s = _scale(x)
    angle = _rand(x, (x.shape[0],), gen) * 90 - 45
    return _motion_blur(x, radius * s, sigma * s, angle)


def zoom_blur(x, severity, gen):
    """The mean of the image and its centre zoomed by 1.00, 1.01, ... up to the severity's largest factor."""
    largest = (1.06, 1.11, 1.15, 1.20, 1.25)[severity - 1]
    zooms = [1 + i / 100 for i in range(round((largest - 1) * 100) + 1)]
    out = x.clone()
    for z in zooms:
        out += _clipped_zoom(x, z)
    return out / (len(zooms) + 1)


def gaussian_blur(x, severity, gen):
    """Extra (not one of the 15): skimage's Gaussian filter, edge pixels repeated."""
    sigma = (0.4, 0.6, 0.7, 0.8, 1.0)[severity - 1]
    return _gaussian(x, sigma * _scale(x))


# -- weather ---------------------------------------------------------------------------------------------------------
def snow(x, severity, gen):
    """Thresholded zoomed noise as flakes, motion-blurred into streaks (and the layer turned 180° on top), over a
    whitened image."""
    loc, scale, zoom, threshold, radius, sigma, keep = (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))[severity - 1]
    n, c, h, w = x.shape
    s = _scale(x)
    layer = loc + scale * _randn(x, (n, 1, h, w), gen)
    layer = _clipped_zoom(layer, zoom * s)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
    layer = torch.floor(layer.clamp(0, 1) * 255) / 255  # the original goes through uint8 here
    angle = _rand(x, (n,), gen) * 90 - 135
    layer = _motion_blur(layer, radius * s, sigma * s, angle)
    x = keep * x + (1 - keep) * torch.maximum(x, _gray(x) * 1.5 + 0.5)
    return x + layer + layer.flip(-1, -2)


def _value_noise(x: torch.Tensor, n: int, cells: int, gen: torch.Generator) -> torch.Tensor:
    """Smooth noise in [0, 1]: a ``cells``×``cells`` grid of uniform values, bicubic-upsampled to the image size."""
    h, w = x.shape[-2:]
    grid = _rand(x, (n, 1, cells + 1, cells + 1), gen)
    return F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True).clamp(0, 1)


def frost_texture(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The procedural stand-in for the frost photographs: (N, C, H, W) in [0, 1], bluish white for RGB.

    Ridged value noise (bright where a smooth random field crosses its middle value) at four scales from a
    quarter of the image side down to two pixels, the finer scales thinner and fainter, over a soft cloud that
    makes some patches icier than others."""
    n, c, h, w = x.shape
    side = min(h, w)
    ridges = torch.zeros(n, 1, h, w, device=x.device, dtype=x.dtype)
    for i, cell in enumerate((4, 8, 16, 32)):  # cells across the image: coarse to fine crystals
        v = _value_noise(x, n, max(2, min(cell, side // 2)), gen)
        ridges = torch.maximum(ridges, (1 - (2 * v - 1).abs()) ** (3 + 2 * i) * (1.0 - 0.12 * i))
    cloud = _value_noise(x, n, 3, gen)
    tex = (0.25 + 0.5 * cloud) * (0.35 + 0.9 * ridges)
    if c == 3:
        tex = tex * torch.tensor([0.84, 0.92, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return tex.clamp(0, 1).expand(n, c, h, w)


def frost(x, severity, gen):
    """Stand-in: ``c0·x + c1·texture`` with CIFAR-10-C's weights and :func:`frost_texture` for the photographs."""
    keep, add = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))[severity - 1]
    return keep * x + add * frost_texture(x, gen)


def plasma_fractal(x: torch.Tensor, n: int, size: int, decay: float, gen: torch.Generator) -> torch.Tensor:
    """Diamond-square height maps (N, size, size) in [0, 1]; ``size`` a power of two. As in CIFAR-10-C the noise
    added at a level is uniform in ±wibble² and wibble shrinks by ``decay`` per level."""
    m = torch.zeros(n, size, size, device=x.device, dtype=_wide(x))
    step, wibble = size, 100.0

    def noisy_mean(total: torch.Tensor) -> torch.Tensor:
        u = torch.rand(total.shape, generator=gen, device=x.device, dtype=_wide(x)) * 2 - 1
        return total / 4 + wibble * wibble * u

    while step >= 2:
        half = step // 2
        corners = m[:, 0::step, 0::step]
        total = corners + corners.roll(-1, 1)
        m[:, half::step, half::step] = noisy_mean(total + total.roll(-1, 2))
        centres, corners = m[:, half::step, half::step], m[:, 0::step, 0::step]
        m[:, 0::step, half::step] = noisy_mean(centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        m[:, half::step, 0::step] = noisy_mean(centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step //= 2
        wibble /= decay
    lo = m.amin(dim=(1, 2), keepdim=True)
    m = m - lo
    return m / m.amax(dim=(1, 2), keepdim=True).clamp(min=1e-12)


def fog(x, severity, gen):
    amount, decay = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))[severity - 1]
    n, c, h, w = x.shape
    size = 1 << (max(h, w) - 1).bit_length()
    layer = plasma_fractal(x, n, size, decay, gen)[:, None, :h, :w].to(x.dtype)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + amount * layer) * peak / (peak + amount)


# -- digital ---------------------------------------------------------------------------------------------------------
def brightness(x, severity, gen):
    """Add to the HSV value (the largest channel), hue and saturation kept."""
    add = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
    if x.shape[1] == 1:
        return x + add
    value = x.amax(dim=1, keepdim=True)
    new = (value + add).clamp(max=1)
    return torch.where(value > 0, x * new / value.clamp(min=1e-12), new.expand_as(x))


def contrast(x, severity, gen):
    factor = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * factor + mean


def elastic_transform(x, severity, gen):
    """A random affine (three points moved by up to ``jitter``), then a random displacement field smoothed by a
    Gaussian of ``sigma`` and scaled by ``alpha``; all three are fractions of the image side."""
    alpha, sigma, jitter = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                            (0.1, 0.03, 0.03))[severity - 1]
    n, c, h, w = x.shape
    side = min(h, w)
    alpha, sigma, jitter = alpha * side, sigma * side, jitter * side
    dev = x.device
    # the affine: three points (column, row) around the centre, moved at random; cv2.warpAffine samples the source
    # at the inverse map, mirrored borders (REFLECT_101), bilinear
    cx, cy, sq = float(w // 2), float(h // 2), float(side // 3)
    src = torch.tensor([[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]], device=dev, dtype=_wide(x))
    dst = src + (torch.rand((n, 3, 2), generator=gen, device=dev, dtype=_wide(x)) * 2 - 1) * jitter
    ones = torch.ones(3, 1, device=dev, dtype=_wide(x))
    forward = torch.linalg.solve(torch.cat([src, ones], 1), dst)  # (N, 3, 2): [col, row, 1] @ forward = moved
    lin, shift = forward[:, :2], forward[:, 2:]                     # moved = p @ lin + shift
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=_wide(x)),
                            torch.arange(w, device=dev, dtype=_wide(x)), indexing="ij")
    pts = torch.stack([xs, ys], -1).reshape(1, -1, 2)
    back = (pts - shift) @ torch.linalg.inv(lin)                  # (N, H·W, 2) source (column, row)
    grid = torch.stack([back[..., 0] / max(w - 1, 1) * 2 - 1, back[..., 1] / max(h - 1, 1) * 2 - 1], -1)
    x = F.grid_sample(x, grid.reshape(n, h, w, 2).to(x.dtype), mode="bilinear", padding_mode="reflection",
                      align_corners=True)
    if alpha == 0:
        return x
    # the displacement field: scipy map_coordinates(order=1, mode="reflect"), borders half-sample symmetric
    field = _rand(x, (n, 2, h, w), gen) * 2 - 1
    field = _gaussian(field, sigma, mode="symmetric", truncate=3.0) * alpha
    dx, dy = field[:, 0], field[:, 1]
    col = xs.to(x.dtype)[None] + dx
    row = ys.to(x.dtype)[None] + dy
    grid = torch.stack([(2 * col + 1) / w - 1, (2 * row + 1) / h - 1], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def pixelate(x, severity, gen):
    """Pillow BOX resize down to ``int(side · factor)``, then BOX back up."""
    factor = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]
    h, w = x.shape[-2:]
    sh, sw = max(1, int(h * factor)), max(1, int(w * factor))
    down_h, down_w = _box_matrix(h, sh, x), _box_matrix(w, sw, x)
    up_h, up_w = _box_matrix(sh, h, x), _box_matrix(sw, w, x)
    return (up_h @ down_h) @ x @ (up_w @ down_w).T


def jpeg_compression(x, severity, gen):
    """Pillow JPEG at quality 80, 65, 58, 50, 40 (its default 4:2:0 chroma subsampling), one image at a time."""
    from PIL import Image

    quality = (80, 65, 58, 50, 40)[severity - 1]
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for img in pixels:
        buffer = io.BytesIO()
        pil = Image.fromarray(img[..., 0], "L") if img.shape[-1] == 1 else Image.fromarray(img, "RGB")
        pil.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out.append(torch.frombuffer(bytearray(decoded.tobytes()), dtype=torch.uint8))
    n, c, h, w = x.shape
    decoded = torch.stack(out).reshape(n, h, w, c).permute(0, 3, 1, 2)
    return decoded.to(device=x.device, dtype=x.dtype) / 255


# -- the registry ----------------------------------------------------------------------------------------------------
#: the 15 CIFAR-10-C corruptions, in the paper's order (noise, blur, weather, digital)
CORRUPTIONS: Dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur, "glass_blur": glass_blur, "motion_blur": motion_blur, "zoom_blur": zoom_blur,
    "snow": snow, "frost": frost, "fog": fog,
    "brightness": brightness, "contrast": contrast, "elastic_transform": elastic_transform, "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}
#: accepted by :func:`corrupt`, not part of the benchmark's 15
EXTRAS: Dict[str, Corruption] = {"gaussian_blur": gaussian_blur}
#: the corruptions that are a procedural stand-in, not the original's algorithm
STAND_INS: Tuple[str, ...] = ("frost",)


def corruption_seed(seed: int, name: str, severity: int) -> int:
    """The generator seed of one (seed, corruption, severity): different corruptions draw different noise."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode()) * 11 + severity) % (2 ** 63)


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``x`` (N, C, H, W in [0, 1], C 1 or 3, H and W ≥ 8) under corruption ``name`` at ``severity`` 1–5, in [0, 1]."""
    known = {**CORRUPTIONS, **EXTRAS}
    if name not in known:
        raise UserError(f"unknown corruption {name!r}; choose one of: {', '.join(known)}")
    if severity not in SEVERITIES:
        raise UserError(f"severity must be one of 1, 2, 3, 4, 5, got {severity!r}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3) or min(x.shape[2:]) < 8:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"corruptions need image batches shaped (N, C, H, W) with C 1 or 3 and H, W ≥ 8, got {shape}")
    gen = torch.Generator(device=x.device).manual_seed(corruption_seed(seed, name, severity))
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    with torch.no_grad():
        out = known[name](work.clamp(0, 1), severity, gen).clamp(0, 1)
    return out.to(x.dtype)
