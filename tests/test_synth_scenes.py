"""The synthetic renderer's real-line conditions (docs/synth.md): the first four presets unchanged,
density from the first frame, the four directions of travel, exact non-integer speeds, rows cut by
the frame's sides, the monochrome camera (grey mp4, 8- and 16-bit PNG sequences), mask-based
packing of non-convex objects, photo objects, and the errors for missing photos or scikit-image."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conveyor_qc.evaluation import synth
from conveyor_qc.evaluation.synth import PRESETS, Preset, SynthDataError, synthesize
from conveyor_qc.evaluation.synth import photos as synth_photos
from conveyor_qc.evaluation.synth.scene import _DensePlanner, _Factory, _mask

# sha256 of gt.txt and labels.csv of 0.7 s clips, recorded from the single-module renderer
# (python/conveyor_qc/synth.py at commit 3ad2736) before it became a package
LEGACY = {
    ("cookies", 11): (
        "ed052241753336e520d3c7243eaac5f491a1f687ad0635649f5e3ccdc439bbe5",
        "570b472960107dba937336ce701b8a9a9b2c5c47c06cdcd8ebf64257357d1dd5",
    ),
    ("vertical", 12): (
        "37faf29d2ab14bea422b60478a2b4098bca713b39d7f12670dda6e5b8ee00167",
        "88ec3b0b4c4213ec2c45540a6758c2c66580e2cf3782bfc0b642b632470dd096",
    ),
    ("light-on-dark", 13): (
        "606b9885f198e646cf0533e42798912bba807bc3762930205c376684200512a7",
        "1f5c23ec1927b90aefce08e9b4d392df3ed838d9b077d2a534f21769e627244f",
    ),
    ("hard", 14): (
        "c1a797fcb178c6b727f85c00bd9e1359249f3ea0999ccbb8b1d5647d80523955",
        "c25e3abff82a457dbb77bbbac281af80d2859eb2fba568a51c6ea2d5afba8bd6",
    ),
}

# target coverage of the view (from the objects' masks) of every preset with a density, on every frame
COVERAGE = {
    "dense": (0.40, 0.60),
    "seed-line": (0.38, 0.52),
    "lateral-cut": (0.33, 0.47),
    "toys": (0.24, 0.36),
    "parts": (0.24, 0.36),
    "photo-dense": (0.38, 0.52),
    "photo-objects": (0.24, 0.36),
}


def have_skimage() -> bool:
    import importlib.util

    return importlib.util.find_spec("skimage") is not None


def needs(name: str) -> None:
    """Skip a preset whose photos come from the optional scikit-image (the real cookie photos ship
    with the package: never skipped)."""
    p = PRESETS[name]
    if (p.belt_pattern == "photo" or {"coin", "cup", "horse"} & set(p.products)) and not have_skimage():
        pytest.skip("scikit-image is not installed (pip install 'conveyor-qc[photos]')")


def read_gt(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", ndmin=2)


_RENDERS: dict = {}


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    """render(preset, seed, seconds, **overrides) -> (SynthResult, gt), each made once per module."""

    def make(name: str, seed: int = 1, seconds: float = 1.0, **kw):
        key = (name, seed, seconds, tuple(sorted(kw.items())))
        if key not in _RENDERS:
            needs(name)
            out = tmp_path_factory.mktemp(name)
            r = synthesize(out, preset=name, seed=seed, seconds=seconds, **kw)
            _RENDERS[key] = (r, read_gt(r.gt))
        return _RENDERS[key]

    return make


def decode(video: Path) -> list:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


# ----------------------------------------------------------------------------- the first presets


@pytest.mark.parametrize("name,seed", list(LEGACY))
def test_first_presets_give_the_same_ground_truth_as_before(tmp_path, name, seed):
    needs(name)
    r = synthesize(tmp_path, preset=name, seed=seed, seconds=0.7)
    assert hashlib.sha256(r.gt.read_bytes()).hexdigest() == LEGACY[(name, seed)][0]
    assert hashlib.sha256(r.labels.read_bytes()).hexdigest() == LEGACY[(name, seed)][1]


def test_every_preset_is_described_and_valid():
    for name, p in PRESETS.items():
        assert p.description and p.name == name
        assert p.direction in ("right", "left", "down", "up")
    assert {
        "dense",
        "uneven-light",
        "seed-line",
        "crackers-up",
        "mesh-packs",
        "lateral-cut",
        "mono",
        "toys",
        "parts",
        "photo-dense",
        "photo-objects",
    } <= set(PRESETS)
    s = PRESETS["seed-line"]
    assert (s.width, s.height, s.fps, s.belt_speed, s.rail_px) == (1920, 1080, 60.0, 1.5, 0)


# ----------------------------------------------------------------------------- density


def coverage_from_gt(r, gt: np.ndarray) -> np.ndarray:
    """Per frame: sum over objects of visibility x mask area / view area (masks never overlap)."""
    areas = np.array(r.areas, float)
    cov = np.zeros(r.frames)
    np.add.at(cov, gt[:, 0].astype(int) - 1, gt[:, 8] * areas[gt[:, 1].astype(int) - 1])
    return cov / (r.size[0] * r.size[1])


@pytest.mark.parametrize("name", list(COVERAGE))
def test_dense_presets_cover_their_target_from_the_first_frame_to_the_last(render, name):
    r, gt = render(name, seconds=0.5 if name == "seed-line" else 1.0)
    cov = coverage_from_gt(r, gt)
    lo, hi = COVERAGE[name]
    assert lo <= cov.min() and cov.max() <= hi, (cov.min(), cov.max())
    assert np.allclose(cov, r.coverage, atol=2e-4)  # the renderer's own count agrees
    assert len(gt[gt[:, 0] == 1]) >= 8  # the belt is full on frame 1


def test_dense_packing_uses_masks_so_objects_nest_but_never_overlap():
    p = PRESETS["parts"]
    rng = np.random.default_rng(5)
    factory = _Factory(rng, p, None, None)
    planner = _DensePlanner(rng, p, 1280, 720, factory)
    objs = []
    while len(objs) < 60:
        objs += planner.next_group()
    u0 = min(o.b for o in objs) - 10
    u1 = max(o.b + o.alpha.shape[1] for o in objs) + 10
    canvas = np.zeros((720, u1 - u0), np.int32)
    boxes = []
    for o in objs:
        m = _mask(o)
        canvas[o.v : o.v + m.shape[0], o.b - u0 : o.b - u0 + m.shape[1]] += m
        ys, xs = np.nonzero(m)
        boxes.append((o.b + xs.min(), o.v + ys.min(), o.b + xs.max() + 1, o.v + ys.max() + 1))
    assert canvas.max() == 1, "two masks overlap"
    b = np.array(boxes)
    iw = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
    ih = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    np.fill_diagonal(inter, 0)
    assert (inter > 200).sum() >= 2, "no two boxes overlap: the packing did not use the masks"


# ----------------------------------------------------------------------------- directions and speed


def small(direction: str, **kw) -> Preset:
    base = {
        "name": f"small-{direction}",
        "width": 480,
        "height": 400,
        "radius": (22.0, 28.0),
        "rate": 6.0,
        "direction": direction,
        "touching_share": 0.0,
        "noise_sigma": 0.0,
        "jpeg_quality": 0,
    }
    base.update(kw)
    return Preset(**base)


@pytest.mark.parametrize("direction,axis,sign", [("right", 2, 1), ("left", 2, -1), ("down", 3, 1), ("up", 3, -1)])
def test_every_direction_moves_the_ground_truth_the_right_way(tmp_path, direction, axis, sign):
    r = synthesize(tmp_path, preset=small(direction), seed=4, seconds=1.0)
    gt = read_gt(r.gt)
    W, H = r.size
    moved = entered = 0
    for oid in np.unique(gt[:, 1]):
        rows = gt[gt[:, 1] == oid]
        full = rows[rows[:, 8] >= 1]
        if len(full) >= 3:
            assert set(np.diff(full[:, axis])) == {8.0 * sign}
            assert len(set(full[:, 5 - axis + 2])) == 1  # no sideways motion
            moved += 1
        if 1 < rows[0, 0] < r.frames - 2:  # it entered in this clip: at the entry edge
            x, y, w, h = rows[0, 2:6]
            edge = {"right": x == 0, "left": x + w == W, "down": y == 0, "up": y + h == H}[direction]
            assert edge and rows[0, 8] < 1
            entered += 1
    assert moved >= 3 and entered >= 2


def test_new_presets_travel_their_way(render):
    for name, axis, sign in (("mesh-packs", 2, -1), ("crackers-up", 3, -1), ("parts", 3, 1)):
        _r, gt = render(name, seconds=1.0 if name == "parts" else 0.5)
        steps = set()
        for oid in np.unique(gt[:, 1]):
            full = gt[(gt[:, 1] == oid) & (gt[:, 8] >= 1)]
            steps |= set(np.diff(full[:, axis]))
        assert steps == {8.0 * sign}, (name, steps)


def test_non_integer_speed_is_exact(render):
    r, gt = render("seed-line", seconds=0.5)  # 1.5 px per frame, 60 fps
    shift = np.round(1.5 * np.arange(r.frames))
    checked = 0
    for oid in np.unique(gt[:, 1]):
        rows = gt[(gt[:, 1] == oid) & (gt[:, 2] > 0) & (gt[:, 2] + gt[:, 4] < r.size[0])]
        if len(rows) >= 10:
            rel = rows[:, 2] - shift[rows[:, 0].astype(int) - 1]
            assert len(set(rel)) == 1, f"object {oid} does not move with the rounded cumulative shift"
            assert len(set(rows[:, 3])) == 1 and len(set(rows[:, 5])) == 1
            checked += 1
    assert checked >= 10


# ----------------------------------------------------------------------------- rows cut by the frame's sides


@pytest.mark.parametrize("name", ["lateral-cut", "seed-line"])
def test_rows_are_cut_by_the_frames_sides_for_their_whole_passage(render, name):
    r, gt = render(name, seconds=0.5 if name == "seed-line" else 1.0)
    W, H = r.size
    inside = (gt[:, 2] > 0) & (gt[:, 2] + gt[:, 4] < W)  # wholly in view along the belt
    vis = []
    for oid in np.unique(gt[:, 1]):
        rows = gt[(gt[:, 1] == oid) & inside]
        if not len(rows):
            continue
        top, bottom = rows[:, 3] == 0, rows[:, 3] + rows[:, 5] == H
        if top.any() or bottom.any():
            assert top.all() or bottom.all(), f"object {oid} is cut on some frames only"
            assert len(set(rows[:, 8])) == 1 and rows[0, 8] < 1
            vis.append(rows[0, 8])
    vis = np.array(vis)
    assert len(vis) >= 5
    assert np.mean((vis >= 0.4) & (vis <= 0.7)) >= 0.6, np.round(vis, 2)
    assert vis.min() > 0


# ----------------------------------------------------------------------------- monochrome camera


def test_mono_mp4_is_grey_with_the_colour_renders_ground_truth(render):
    r, _gt = render("mono", seed=3, seconds=0.5)
    colour, _ = render("mono", seed=3, seconds=0.5, mono=False)
    assert r.gt.read_bytes() == colour.gt.read_bytes() and r.labels.read_bytes() == colour.labels.read_bytes()
    frames = decode(r.video)
    assert len(frames) == r.frames
    for f in frames[::5]:
        assert (f[..., 0] == f[..., 1]).all() and (f[..., 1] == f[..., 2]).all()
    cf = decode(colour.video)[7]
    assert np.abs(cf[..., 0].astype(int) - cf[..., 2]).mean() > 5  # the colour render is in colour


def test_png16_and_png8_sequences_are_grey_and_show_the_same_objects(render):
    mp4, gt = render("mono", seed=3, seconds=0.5)
    r16, _ = render("mono", seed=3, seconds=0.5, output_format="png16")
    r8, _ = render("mono", seed=3, seconds=0.5, output_format="png8")
    assert r16.gt.read_bytes() == mp4.gt.read_bytes() == r8.gt.read_bytes()
    files = sorted((r16.out_dir / "frames").glob("img_*.png"))
    assert [f.name for f in files] == [f"img_{i:05d}.png" for i in range(1, r16.frames + 1)]
    assert str(r16.video).endswith("frames/img_%05d.png")
    grey = decode(mp4.video)
    n = 8
    img16 = cv2.imread(str(files[n - 1]), cv2.IMREAD_UNCHANGED)
    img8 = cv2.imread(str(r8.out_dir / "frames" / f"img_{n:05d}.png"), cv2.IMREAD_UNCHANGED)
    assert img16.dtype == np.uint16 and img16.shape == (r16.size[1], r16.size[0])
    assert img8.dtype == np.uint8 and img8.shape == img16.shape
    assert img16.max() > 200 * 257 and (img16 % 257 != 0).mean() > 0.9  # the full range, not 8-bit x 257
    rows = gt[(gt[:, 0] == n) & (gt[:, 8] >= 1)]
    assert len(rows) >= 3
    ref = grey[n - 1][..., 0].astype(float)
    for x, y, w, h in rows[:, 2:6].astype(int):
        inner = (slice(y + h // 4, y + 3 * h // 4), slice(x + w // 4, x + 3 * w // 4))
        m16, m8, mref = img16[inner].mean() / 257, img8[inner].mean(), ref[inner].mean()
        assert abs(m16 - mref) < 3 and abs(m8 - mref) < 3
        # the cookie is darker than the belt just above its box (shadows fall down-right)
        above = img16[max(0, y - 6) : max(0, y - 2), x + w // 4 : x + 3 * w // 4] / 257
        if y >= 40 and above.size:
            assert np.median(above) > np.median(img16[inner] / 257) + 10
    # and the 16-bit sequence with the image-sequence pattern is what `run` reads as VIDEO
    assert (r16.out_dir / "frames" / "img_00001.png").is_file()


# ----------------------------------------------------------------------------- determinism, photos, errors


def test_same_seed_same_output_for_new_scenes(tmp_path, render):
    r1, _ = render("parts", seconds=1.0)
    r2 = synthesize(tmp_path, preset="parts", seed=1, seconds=1.0)
    assert r1.gt.read_bytes() == r2.gt.read_bytes() and r1.labels.read_bytes() == r2.labels.read_bytes()
    a, b = decode(r1.video), decode(r2.video)
    assert len(a) == len(b) and all((x == y).all() for x, y in zip(a[::6], b[::6], strict=True))
    labels = r2.labels.read_text().splitlines()[1:]
    kinds = {ln.split(",")[2] for ln in labels}
    assert kinds <= {"normal", "broken", "missing-hole", "no-cap", "torn-handle"}
    assert set(r2.products) <= {"lpart", "bottle", "bag"}


def test_photo_objects_come_from_scikit_images_photographs(render):
    r, gt = render("photo-objects", seconds=1.0)
    assert set(r.products) <= {"coin", "horse", "cup"} and {"coin", "horse"} <= set(r.products)
    assert all(s.startswith("skimage:") for s in r.sources)
    steps = set()
    for oid in np.unique(gt[:, 1]):
        full = gt[(gt[:, 1] == oid) & (gt[:, 8] >= 1)]
        steps |= set(np.diff(full[:, 2]))
    assert steps == {-8.0}


def test_missing_scikit_image_names_the_package_and_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "skimage" else real(name, *a))
    monkeypatch.setattr(synth_photos, "_SK_CACHE", {})
    for name in ("photo-objects",):
        with pytest.raises(SynthDataError) as err:
            synthesize(tmp_path / "out", preset=name, seconds=0.5)
        assert "scikit-image" in str(err.value) and "pip install" in str(err.value) and name in str(err.value)
    belt_only = dataclasses.replace(PRESETS["cookies"], name="gravel-belt", belt_pattern="photo")
    with pytest.raises(SynthDataError, match="scikit-image"):
        synthesize(tmp_path / "out", preset=belt_only, seconds=0.5)
    assert not (tmp_path / "out").exists()


def test_missing_cookie_photos_name_the_folder_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(synth.SHARED_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(SynthDataError) as err:
        synthesize(tmp_path / "out", preset="photo-dense", seconds=0.5)
    assert str(tmp_path / "nowhere") in str(err.value) and synth.SHARED_ENV in str(err.value)
    assert not (tmp_path / "out").exists()


def test_bad_scene_options_are_errors(tmp_path):
    for bad in (
        {"direction": "sideways"},
        {"products": ("spaceship",)},
        {"output_format": "gif"},
        {"overhang": 0.1},
        {"belt_pattern": "tartan"},
        {"density": 0.95},
    ):
        with pytest.raises(ValueError):
            synthesize(tmp_path / "out", preset=dataclasses.replace(PRESETS["cookies"], **bad), seconds=0.5)
    with pytest.raises(ValueError, match="format"):
        synthesize(tmp_path / "out", preset="mono", seconds=0.5, output_format="avi")
    assert not (tmp_path / "out").exists()


def test_cli_synth_png8(tmp_path):
    out = tmp_path / "seq"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor_qc",
            "synth",
            str(out),
            "--preset",
            "mono",
            "--seconds",
            "0.2",
            "--format",
            "png8",
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "frames/img_%05d.png" in r.stdout
    assert len(list((out / "frames").glob("img_*.png"))) == 6
    assert sorted(p.name for p in out.iterdir()) == ["frames", "gt.txt", "labels.csv"]
