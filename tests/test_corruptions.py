"""The 15 CIFAR-10-C corruptions × 5 severities (``armor.corrupt``) and mCE against a reference run (issue 18)."""
from __future__ import annotations

import colorsys
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from armor.config import EvalConfig
from armor.corrupt import CORRUPTIONS, EXTRAS, SEVERITIES, STAND_INS, corrupt, corruption_seed, frost_texture
from armor.errors import UserError
from armor.eval.corruptions import load_reference, mce
from armor.results import EvaluationRecord, read_record

FIFTEEN = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
           "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression"]
#: corruptions that draw random numbers (the others are fixed functions of the image)
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
          "elastic_transform"}


def smooth_fields(n: int, c: int, size: int, seed: int = 0) -> torch.Tensor:
    """Natural-looking synthetic images: 1/f-like sums of bicubic-upsampled noise, stretched to [0.1, 0.9]."""
    g = torch.Generator().manual_seed(seed)
    x = sum(0.5 ** k * F.interpolate(torch.rand(n, c, 4 << k, 4 << k, generator=g), size=(size, size),
                                     mode="bicubic", align_corners=False) for k in range(4))
    lo, hi = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    return (0.1 + 0.8 * (x - lo) / (hi - lo)).clamp(0, 1)


def test_the_fifteen_types_and_five_severities_are_registered():
    assert list(CORRUPTIONS) == FIFTEEN and SEVERITIES == (1, 2, 3, 4, 5)
    assert STAND_INS == ("frost",) and list(EXTRAS) == ["gaussian_blur"]
    x = smooth_fields(2, 3, 16)
    for old in ("gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "contrast", "brightness",
                "pixelate"):  # the seven names armor had before all still work
        assert corrupt(x, old, 2).shape == x.shape
    with pytest.raises(UserError, match="unknown corruption 'spatter'; choose one of: gaussian_noise, .*gaussian_blur"):
        corrupt(x, "spatter", 1)
    with pytest.raises(UserError, match="severity must be one of 1, 2, 3, 4, 5, got 6"):
        corrupt(x, "fog", 6)
    for bad in (torch.rand(4, 64), torch.rand(2, 2, 16, 16), torch.rand(2, 3, 4, 4)):
        with pytest.raises(UserError, match="C 1 or 3 and H, W ≥ 8, got"):
            corrupt(bad, "fog", 1)


@pytest.mark.parametrize("size", [8, 28, 32, 224])
def test_every_corruption_is_deterministic_in_range_and_keeps_the_shape(size, digits):
    if size == 8:
        x = digits.x_test[:16]                       # real 8×8 grey digits
    elif size == 224:
        x = smooth_fields(1, 3, 224)                 # one image: 224×224 is slow on two cores
    else:
        x = smooth_fields(6, 1 if size == 28 else 3, size)
    for name in [*CORRUPTIONS, *EXTRAS]:
        for s in SEVERITIES:
            out = corrupt(x, name, s, seed=3)
            assert out.shape == x.shape and out.dtype == x.dtype, (name, s)
            assert out.min() >= 0 and out.max() <= 1, (name, s)
            if s in (1, 5):  # the same seed gives the same images; another seed others only where there is noise
                assert torch.equal(out, corrupt(x, name, s, seed=3)), (name, s)
                assert torch.equal(out, corrupt(x, name, s, seed=4)) == (name not in RANDOM), (name, s)
        assert not torch.equal(corrupt(x, name, 5), x), name


def _mean_abs(name: str, x: torch.Tensor):
    return [float((corrupt(x, name, s) - x).abs().mean()) for s in SEVERITIES]


def _rising(values) -> bool:
    return all(a < b for a, b in zip(values, values[1:]))


def test_the_pixel_change_rises_with_severity():
    """On 32×32 images (the size CIFAR-10-C's parameters are written for; on 8×8 pixelate's ``int(8·0.95)`` and
    ``int(8·0.9)`` are both 7, so some severities coincide) of smooth random fields, whose every pixel has
    neighbours like it, so that blur, zoom, warps and compression change them by amounts that grow with the
    kernel — as on natural images, and unlike white noise, which any blur flattens completely."""
    x = smooth_fields(48, 3, 32)
    by_pixels = [n for n in CORRUPTIONS if n not in ("frost", "elastic_transform", "glass_blur", "motion_blur")]
    for name in by_pixels:
        d = _mean_abs(name, x)
        assert _rising(d) and d[0] > 1e-3, (name, d)
    # motion blur's severities 3 and 4 are the same kernel in CIFAR-10-C (σ = 2; radius 6 or 8 only cuts a tail of
    # weight 1e-8), so they differ only in their random angles
    d = _mean_abs("motion_blur", x)
    assert _rising(d[:3]) and d[3] < d[4] and abs(d[3] - d[2]) < 0.03 * d[2], d
    # glass blur: severities 1–3 shuffle once and blur more (which evens the shuffle out), 4–5 shuffle twice
    d = _mean_abs("glass_blur", x)
    assert min(d[3:]) > 1.4 * max(d[:3]), d
    # frost adds more texture and keeps less of the image (c0 = 1, 1, .9, .85, .75; c1 = .2, .3, .4, .4, .45): the
    # pixel change can fall, the image's share falls at every step — 1 - correlation with the clean image rises
    def decorrelation(s):
        a, b = corrupt(x, "frost", s).flatten(1), x.flatten(1)
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        return float(1 - ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean())
    d = [decorrelation(s) for s in SEVERITIES]
    assert _rising(d) and d[0] > 0.005, d


def test_elastic_severity_moves_from_a_global_affine_to_a_local_warp():
    """CIFAR-10-C's elastic transform trades a random affine (points moved by 8 % of the side at severity 1, 3 % at
    5) for a growing local displacement field (none at 1): its pixel change *falls* with severity. What rises is the
    local warp, seen on a linear ramp: any affine map keeps it linear (zero Laplacian), a local warp does not."""
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    ramp = (0.2 + 0.6 * (0.7 * xs + 0.3 * ys) / 31).expand(24, 1, 32, 32).contiguous()
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3)
    warp = [float(F.conv2d(corrupt(ramp, "elastic_transform", s), kernel)[..., 6:-6, 6:-6].abs().mean())
            for s in SEVERITIES]
    assert warp[0] < 1e-5 and _rising(warp), warp
    d = _mean_abs("elastic_transform", smooth_fields(48, 3, 32))
    assert d[0] > d[4], d  # the shrinking affine dominates the pixel change


def test_faithful_details_pixelate_is_pillow_box_and_brightness_is_the_hsv_value():
    from PIL import Image

    x = smooth_fields(2, 1, 32)
    for s, factor in zip(SEVERITIES, (0.95, 0.9, 0.85, 0.75, 0.65)):
        img = Image.fromarray(x[0, 0].numpy(), "F")
        small = int(32 * factor)
        want = np.asarray(img.resize((small, small), Image.BOX).resize((32, 32), Image.BOX))
        assert np.abs(corrupt(x, "pixelate", s)[0, 0].numpy() - want).max() < 1e-5, s
    rgb = smooth_fields(1, 3, 8)
    out = corrupt(rgb, "brightness", 4)[0]
    for i, j in [(0, 0), (3, 5), (7, 7)]:
        h, sat, v = colorsys.rgb_to_hsv(*rgb[0, :, i, j].tolist())
        assert out[:, i, j].tolist() == pytest.approx(colorsys.hsv_to_rgb(h, sat, min(1.0, v + 0.2)), abs=1e-6)
    per_channel = rgb[0].mean(dim=(1, 2), keepdim=True)
    assert torch.allclose(corrupt(rgb, "contrast", 5)[0], (rgb[0] - per_channel) * 0.15 + per_channel, atol=1e-6)
    # frost is c0·x + c1·texture with CIFAR-10-C's weights, the texture being the procedural stand-in
    gen = torch.Generator().manual_seed(corruption_seed(0, "frost", 5))
    assert torch.allclose(corrupt(rgb, "frost", 5), (0.75 * rgb + 0.45 * frost_texture(rgb, gen)).clamp(0, 1))


def test_zoom_blur_matches_scipys_clipped_zoom():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = smooth_fields(1, 1, 32)
    img = x[0, 0].double().numpy()

    def clipped_zoom(a, z):  # CIFAR-10-C's helper, restated ("nearest" only settles a rounding at the last row)
        crop = int(np.ceil(32 / z))
        top = (32 - crop) // 2
        out = ndimage.zoom(a[top:top + crop, top:top + crop], z, order=1, mode="nearest")
        trim = (out.shape[0] - 32) // 2
        return out[trim:trim + 32, trim:trim + 32]

    zooms = np.arange(1, 1.16, 0.01)  # severity 3
    want = (img + sum(clipped_zoom(img, z) for z in zooms)) / (len(zooms) + 1)
    assert np.abs(corrupt(x, "zoom_blur", 3)[0, 0].numpy() - want).max() < 1e-5


# -- mCE -------------------------------------------------------------------------------------------------------------
def _block(accs):
    return {"severity": {str(s): a for s, a in zip(SEVERITIES, accs)}, "mean": sum(accs) / 5}


def test_mce_against_a_reference_with_known_numbers():
    model = {"clean_acc": 90.0, "corruptions": {"fog": _block([80, 70, 60, 50, 40]),   # errors sum 200
                                                "snow": _block([90] * 5)}}             # errors sum 50
    ref = {"clean_acc": 80.0, "corruptions": {"fog": _block([60, 50, 40, 30, 20]),     # errors sum 300
                                              "snow": _block([80] * 5),                # errors sum 100
                                              "frost": _block([10] * 5)}}              # extra: ignored
    out = mce(model, ref)
    assert out["ce"] == pytest.approx({"fog": 200 / 300 * 100, "snow": 50.0})
    assert out["mce"] == pytest.approx((200 / 3 + 50) / 2) and out["undefined"] == []
    # relative: fog (200 - 5·10) / (300 - 5·20) = 75 %; snow dropped nothing in either model, so it has none
    assert out["relative_ce"] == {"fog": pytest.approx(75.0), "snow": None}
    assert out["relative_mce"] == pytest.approx(75.0) and out["relative_undefined"] == ["snow"]
    perfect = {"clean_acc": 100.0, "corruptions": {"fog": _block([100] * 5), "snow": _block([80] * 5)}}
    assert mce(model, perfect)["undefined"] == ["fog"] and mce(model, perfect)["mce"] == pytest.approx(50.0)
    with pytest.raises(UserError, match="the reference lacks corruption\\(s\\) snow; it has: fog"):
        mce(model, {"corruptions": {"fog": _block([1] * 5)}})
    with pytest.raises(UserError, match="corruption 'fog' needs accuracies for severities 1–5"):
        mce(model, {"corruptions": {"fog": {"mean": 3}, "snow": _block([1] * 5)}})


def test_the_reference_option_needs_corruptions():
    with pytest.raises(UserError, match="corruption_reference 'ref.json' applies with corruptions: true"):
        EvalConfig(checkpoint="x.pt", corruption_reference="ref.json")
    assert EvalConfig(checkpoint="x.pt", corruptions=True, corruption_reference="ref.json").corruption_reference


def test_armor_eval_reports_mce_against_the_standard_run(standard_run, robust_run, tmp_path, capsys):
    """The CLI path: evaluate the standard run with corruptions, then the PGD-AT run against it."""
    from armor.cli import main

    ref = tmp_path / "standard" / "eval_c.json"
    ref.parent.mkdir()
    common = ["--suite", "quick", "--n", "60", "--no-checks", "--corruptions"]
    assert main(["eval", "--checkpoint", str(standard_run["out"] / "best.pt"), *common, "--out", str(ref)]) == 0
    out = tmp_path / "robust.json"
    code = main(["eval", "--checkpoint", str(robust_run["out"] / "best.pt"), *common,
                 "--corruption-reference", str(ref), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    theirs = read_record(ref, EvaluationRecord).corruptions
    ours = read_record(out, EvaluationRecord).corruptions
    assert set(ours["corruptions"]) == set(FIFTEEN) and ours["n"] == theirs["n"] == 60
    want = mce(ours, theirs)
    got = ours["mce"]
    assert got["reference"] == str(ref) and got["mce"] == pytest.approx(want["mce"])
    assert got["ce"] == pytest.approx(want["ce"])
    # CE from the stored accuracies by hand, for one corruption
    err = lambda block: sum(100 - a for a in block["severity"].values())  # noqa: E731
    assert got["ce"]["contrast"] == pytest.approx(100 * err(ours["corruptions"]["contrast"])
                                                  / err(theirs["corruptions"]["contrast"]))
    line = [ln for ln in printed.splitlines() if ln.startswith("mCE ")]
    assert line == [f"mCE {got['mce']:.1f} % (relative {got['relative_mce']:.1f} %; 100 = the reference {ref})"]
    # the run folder works as the reference too, and a reference on other data or without corruptions does not
    assert load_reference(ref.parent, dataset="digits", split="test")["path"] == str(ref)
    with pytest.raises(UserError, match="is on dataset 'digits', this evaluation on 'mnist'"):
        load_reference(ref, dataset="mnist")
    shutil.copy(ref, ref.parent / "second.json")
    with pytest.raises(UserError, match="holds 2 eval records with corruptions \\(eval_c.json, second.json\\)"):
        load_reference(ref.parent)
    raw = json.loads(ref.read_text())
    raw["corruptions"] = None
    (tmp_path / "plain.json").write_text(json.dumps(raw))
    with pytest.raises(UserError, match="was evaluated without corruptions"):
        load_reference(tmp_path / "plain.json")
    assert main(["eval", "--checkpoint", str(robust_run["out"] / "best.pt"), "--corruption-reference",
                 str(ref)]) == 2
    assert "applies with corruptions: true" in capsys.readouterr().err
