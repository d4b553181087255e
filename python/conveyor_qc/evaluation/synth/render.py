"""synthesize(): the render loop and the writers."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from conveyor_qc.evaluation.synth.belt import _belt_strip, _light_map, _rails, _vignette
from conveyor_qc.evaluation.synth.photos import (
    _load_photos,
    load_skimage_objects,
    skimage_texture,
)
from conveyor_qc.evaluation.synth.presets import (
    BELT_PATTERNS,
    DIRECTIONS,
    FORMATS,
    PRESETS,
    Preset,
    SynthError,
    SynthResult,
)
from conveyor_qc.evaluation.synth.scene import (
    _MAX_LIFT,
    BLUR_KINDS,
    PRODUCTS,
    _DensePlanner,
    _Factory,
    _Obj,
    _Planner,
    _prepare,
    blur_sprite,
    box_to_output,
    products_of,
    to_output,
)
from conveyor_qc.io.atomic import fsync_directory, fsync_path, temporary_sibling


def resolve_preset(preset, output_format: str | None = None, mono: bool | None = None) -> Preset:
    """The Preset for a name (or a Preset), with the output format / monochrome camera overridden."""
    if isinstance(preset, Preset):
        p = preset
    elif isinstance(preset, str) and preset in PRESETS:
        p = PRESETS[preset]
    else:
        raise SynthError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    changes: dict[str, Any] = {}
    if output_format is not None:
        if output_format not in FORMATS:
            raise SynthError(f"output format must be one of {', '.join(FORMATS)}, not {output_format!r}")
        changes["output_format"] = output_format
    if mono is not None:
        changes["mono"] = bool(mono)
    return dataclasses.replace(p, **changes) if changes else p


def _check_args(preset, seed, seconds, output_format=None, mono=None) -> tuple:
    p = resolve_preset(preset, output_format, mono)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SynthError(f"seed must be a non-negative integer, not {seed!r}")
    if seconds is None:
        seconds = p.seconds
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise SynthError(f"seconds must be a number, not {seconds!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise SynthError(f"seconds must be a positive number, not {seconds!r}")
    if p.direction not in DIRECTIONS:
        raise SynthError(f"preset {p.name!r}: direction must be one of {', '.join(DIRECTIONS)}, not {p.direction!r}")
    if p.style not in ("drawn", "photo"):
        raise SynthError(f"preset {p.name!r}: style must be 'drawn' or 'photo', not {p.style!r}")
    unknown = [n for n in p.products if n not in PRODUCTS]
    if unknown:
        raise SynthError(f"preset {p.name!r}: unknown products {unknown}; known: {', '.join(PRODUCTS)}")
    if p.output_format not in FORMATS:
        raise SynthError(f"preset {p.name!r}: output_format must be one of {', '.join(FORMATS)}")
    if p.belt_pattern not in BELT_PATTERNS:
        raise SynthError(f"preset {p.name!r}: belt_pattern must be one of {', '.join(BELT_PATTERNS)}")
    if p.rate <= 0 or p.belt_speed <= 0 or p.fps <= 0 or p.width < 64 or p.height < 64:
        raise SynthError(f"preset {p.name!r}: rate, belt_speed and fps must be positive, size at least 64x64")
    if not 0.0 <= p.blur_share <= 1.0 or not 0.5 <= min(p.blur_px) <= max(p.blur_px):
        raise SynthError(f"preset {p.name!r}: blur_share must be in [0, 1], blur_px a range of at least 0.5 px")
    if not 0.0 <= p.density < 0.9 or p.overhang < 0 or p.lanes < 0:
        raise SynthError(f"preset {p.name!r}: density must be in [0, 0.9), overhang and lanes not negative")
    if p.overhang > 0 and (p.rail_px > 0 or p.density <= 0):
        raise SynthError(f"preset {p.name!r}: a belt wider than the view (overhang) needs rail_px = 0 and a density")
    across = p.height if p.direction in ("right", "left") else p.width
    if p.density <= 0 and across - 2 * (p.rail_px + p.lane_margin) < 2.6 * p.radius[1] * (
        2.0 if p.stacked_share > 0 else 1.0
    ):
        raise SynthError(f"preset {p.name!r}: the belt is too narrow for objects of radius {p.radius[1]}")
    frames = max(1, int(round(seconds * p.fps)))
    return p, int(seed), seconds, frames


def _sources(p: Preset) -> tuple:
    """The photos the preset's products need: (cookie photos or None, skimage cut-outs or None)."""
    names = products_of(p)
    photos = _load_photos() if any(PRODUCTS[n].source == "cookie-photos" for n in names) else None
    sk = load_skimage_objects(p.name) if any(PRODUCTS[n].source == "skimage" for n in names) else None
    return photos, sk


def _check_out_dir(out_dir) -> Path:
    try:
        out = Path(os.fspath(out_dir))
    except TypeError:
        raise SynthError(f"out_dir must be a path, not {out_dir!r}") from None
    if out.exists() and not out.is_dir():
        raise SynthError(f"out_dir {str(out)!r} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SynthError(f"cannot create out_dir {str(out)!r}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise SynthError(f"out_dir {str(out)!r} is not writable")
    return out


#: What a clip is made of (the video is one of the first two): an out_dir holding any is a clip.
CLIP_FILES = ("video.mp4", "frames", "gt.txt", "labels.csv", "conditions.csv")


def synthesize(
    out_dir,
    preset: str | Preset = "cookies",
    seed: int = 0,
    seconds: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    output_format: str | None = None,
    mono: bool | None = None,
    replace: bool = False,
) -> SynthResult:
    """Render a synthetic belt video with exact ground truth into ``out_dir``.

    Writes ``video.mp4`` (or, for ``output_format`` "png8" / "png16", the grey image sequence
    ``frames/img_%05d.png``), ``gt.txt`` and ``labels.csv`` (each to a temporary name in ``out_dir``,
    renamed into place at the end), and with a ``blur_share`` ``conditions.csv`` (which objects are
    blurred, touching or cut: :func:`write_conditions`). ``preset`` is a name from ``PRESETS`` (or a ``Preset``),
    ``seconds`` defaults to the preset's, ``output_format`` and ``mono`` override the preset's,
    ``progress(done_frames, total_frames)`` is called after every frame. The ground truth does not
    depend on the format or the camera: the same seed gives the same gt.txt and labels.csv.
    Raises SynthError for bad arguments (SynthDataError for missing photos) before writing anything,
    and when ``out_dir`` already holds a clip, unless ``replace``.
    """
    p, seed, seconds, frames = _check_args(preset, seed, seconds, output_format, mono)
    photos, sk = _sources(p)
    belt_photo = skimage_texture(p.belt_photo, p.name) if p.belt_pattern == "photo" else None
    out = _check_out_dir(out_dir)
    held = [name for name in CLIP_FILES if (out / name).exists()]
    if held and not replace:
        raise SynthError(
            f"{out} already holds a clip ({', '.join(held)}): give --force (replace=True) to replace it, "
            "or write into another folder"
        )
    fmt = p.output_format
    mono = p.mono or fmt != "mp4"
    # The random streams, each drawn from in a fixed order: a seed gives the same clip for ever.
    ss = np.random.SeedSequence([seed, 0x5EED])
    rng_obj, rng_belt, rng_cam = (np.random.default_rng(s) for s in ss.spawn(3))
    rng_pattern, rng_light = (np.random.default_rng(s) for s in ss.spawn(2))  # (new scene options only)
    rng_blur = np.random.default_rng(ss.spawn(1)[0])  # drawn from only with a blur_share
    scene = _Scene(p, frames, photos, sk, belt_photo, rng_obj, rng_belt, rng_pattern, rng_light, rng_blur)
    camera = _Camera(p, scene.W, scene.L, rng_cam, fmt, mono)
    names = {"video": "video.mp4" if fmt == "mp4" else "frames", "gt": "gt.txt", "labels": "labels.csv"}
    if p.blur_share > 0:
        names["conditions"] = "conditions.csv"
    tmp = _temporary_outputs(out, names, fmt)
    try:
        if fmt == "mp4":
            writer = _BackgroundWriter(tmp["video"], camera.fps, (p.width, p.height), p.jpeg_quality, color=not mono)
        else:
            writer = _PngWriter(tmp["video"])
        try:
            with open(tmp["gt"], "w", newline="") as gt:
                for t in range(frames):
                    frame = scene.frame(t, gt)
                    writer.put(to_output(camera.shoot(frame, scene.light, t), p.direction))
                    if progress is not None:
                        progress(t + 1, frames)
        finally:
            writer.close()
        kinds = _write_labels(tmp["labels"], scene.entered)
        if "conditions" in tmp:
            write_conditions(tmp["conditions"], scene.entered)
        _publish(tmp, names, out, fmt)
        if "conditions" not in names:  # a clip replaced: its conditions no longer hold
            (out / "conditions.csv").unlink(missing_ok=True)
    except BaseException:
        _remove(tmp.values())
        raise

    entered = scene.entered
    video = out / names["video"] if fmt == "mp4" else out / names["video"] / "img_%05d.png"
    return SynthResult(
        out_dir=out,
        video=video,
        gt=out / names["gt"],
        labels=out / names["labels"],
        preset=p.name,
        seed=seed,
        frames=frames,
        fps=camera.fps,
        size=(p.width, p.height),
        objects=len(entered),
        anomalies=len(entered) - kinds["normal"],
        kinds=kinds,
        sources=tuple(o.source for o in entered),
        products=tuple(o.product for o in entered),
        areas=tuple(o.area for o in entered),
        coverage=tuple(scene.coverage),
        output_format=fmt,
        conditions=out / names["conditions"] if "conditions" in names else None,
    )


class _Scene:
    """The belt and what it carries, frame by frame in the belt's own axes (u along it, v across):
    the products enter as the planner places them, are composited over the belt's pattern and
    written to the ground truth with the box the camera sees of them."""

    def __init__(
        self, p: Preset, frames: int, photos, sk, belt_photo, rng_obj, rng_belt, rng_pattern, rng_light, rng_blur
    ):
        self.p = p
        self.rng_blur = rng_blur
        if p.direction in ("right", "left"):
            self.L, self.W = p.width, p.height
        else:
            self.L, self.W = p.height, p.width
        L, W = self.L, self.W
        self.shifts = np.round(p.belt_speed * np.arange(frames)).astype(np.int64)
        factory = _Factory(rng_obj, p, photos, sk)
        self.planner = (_DensePlanner if p.density > 0 else _Planner)(rng_obj, p, L, W, factory)
        lift = max([_MAX_LIFT] + [PRODUCTS[n].lift for n in products_of(p)])
        # objects are brought in this far ahead of the view: their shadows reach beyond their edge
        self.reach = int(math.ceil(lift * max(map(abs, p.shadow_offset)) + 3.5 * p.shadow_blur * lift)) + 8
        self.strip, self.period = _belt_strip(rng_belt, p, W, L, rng_pattern, belt_photo)
        self.rail_top, self.rail_bottom = _rails(p, W, L, rng_belt)
        if p.light_gradient > 0 or p.color_cast > 0:
            self.light = _light_map(p, W, L, rng_light)
        else:
            self.light = _vignette(p, W, L)
        self.entered: list[_Obj] = []  # in id order
        self.active: list[_Obj] = []  # made, and not yet past the view
        self.coverage: list[float] = []

    def frame(self, t: int, gt) -> np.ndarray:
        """Frame t of the belt and its products (float32, before the light and the camera); its
        ground-truth rows written to ``gt``."""
        p, L, W = self.p, self.L, self.W
        s = int(self.shifts[t])
        while self.planner.cursor + s + self.reach > 0:
            for o in self.planner.next_group():
                if p.blur_share > 0 and self.rng_blur.random() < p.blur_share:
                    kind = BLUR_KINDS[int(self.rng_blur.integers(len(BLUR_KINDS)))]
                    blur_sprite(o, kind, float(self.rng_blur.uniform(*p.blur_px)))
                _prepare(o, p, W)
                self.active.append(o)
        start = (-s) % self.period
        frame = self.strip[:, start : start + L].astype(np.float32)
        if self.rail_top is not None:
            frame[: p.rail_px] = self.rail_top
            frame[W - p.rail_px :] = self.rail_bottom
        still, new, rows = [], [], []
        covered = 0
        for o in self.active:
            left = o.b + o.pu + s
            if left >= L:  # gone past the view for good
                o.patch_m = o.patch_a = o.mask = None
                continue
            still.append(o)
            assert o.patch_m is not None and o.patch_a is not None, "made by _prepare, freed once past"
            _composite(frame, o.patch_m, o.patch_a, o.v + o.pv, left)
            box = _visible_box(o, o.b + s, L)
            if box is not None:
                rows.append((o, box[:5]))
                covered += box[5]
                if not o.id:
                    new.append(o)
        self.active = still
        self.coverage.append(covered / float(L * W))
        # ids in order of entry: first frame, then the leading edge further along, then across
        new.sort(key=lambda o: (-(o.b + o.full_box[2]), o.v))
        for o in new:
            self.entered.append(o)
            o.id = len(self.entered)
        rows.sort(key=lambda r: r[0].id)
        for o, (u0, v0, du, dv, vis) in rows:
            x, y, w, h = box_to_output(p.direction, L, u0, v0, du, dv)
            gt.write(f"{t + 1},{o.id},{x},{y},{w},{h},1,1,{_fmt_vis(vis)}\n")
        return frame


class _Camera:
    """What the camera makes of the lit belt: flicker, a monochrome sensor, motion blur, noise."""

    N_BANK, PAD = 4, 32  # noise frames drawn once, cut at random offsets each frame

    def __init__(self, p: Preset, W: int, L: int, rng_cam, fmt: str, mono: bool):
        self.p, self.W, self.L, self.rng, self.fmt, self.mono = p, W, L, rng_cam, fmt, mono
        self.fps = float(p.fps)
        pad = self.PAD
        self.bank: list[np.ndarray] | None = None
        self.bank16: list[np.ndarray] | None = None
        if p.noise_sigma > 0:
            if fmt == "png16":
                self.bank16 = [
                    rng_cam.standard_normal((W + pad, L + pad), dtype=np.float32) * np.float32(p.noise_sigma * 257)
                    for _ in range(self.N_BANK)
                ]
            else:
                shape = (W + pad, L + pad) if mono else (W + pad, L + pad, 3)
                self.bank = [
                    np.round(rng_cam.standard_normal(shape, dtype=np.float32) * p.noise_sigma).astype(np.int16)
                    for _ in range(self.N_BANK)
                ]
        self.flick_phase = rng_cam.uniform(0, 2 * np.pi)
        self.flick_freq = rng_cam.uniform(1.5, 4.0)

    def shoot(self, frame: np.ndarray, light: np.ndarray, t: int) -> np.ndarray:
        p, W, L = self.p, self.W, self.L
        gain = 1.0
        if p.flicker > 0:
            gain = 1.0 + p.flicker * (
                0.8 * math.sin(2 * math.pi * self.flick_freq * t / self.fps + self.flick_phase)
                + 0.6 * float(self.rng.standard_normal())
            )
        if not self.mono:
            img = cv2.multiply(frame, light, scale=gain, dtype=cv2.CV_8U)
        else:  # a monochrome camera sees the luminance
            grey = cv2.cvtColor(cv2.multiply(frame, light, scale=gain), cv2.COLOR_BGR2GRAY)
            if self.fmt == "png16":
                img = cv2.multiply(grey, 257.0)
            else:
                img = cv2.convertScaleAbs(grey)
        if p.motion_blur > 1:  # everything in view moves with the belt (the rails are uniform along it)
            img = cv2.blur(img, (int(p.motion_blur), 1))
        if self.bank is not None:
            k, oy, ox = (int(x) for x in self.rng.integers(0, [self.N_BANK, self.PAD, self.PAD]))
            noise = self.bank[k][oy : oy + W, ox : ox + L]
            img = cv2.add(img, noise, dtype=cv2.CV_8U) if t % 2 == 0 else cv2.subtract(img, noise, dtype=cv2.CV_8U)
        elif self.bank16 is not None:
            k, oy, ox = (int(x) for x in self.rng.integers(0, [self.N_BANK, self.PAD, self.PAD]))
            noise = self.bank16[k][oy : oy + W, ox : ox + L]
            img = cv2.add(img, noise) if t % 2 == 0 else cv2.subtract(img, noise)
        if self.fmt == "png16":
            img = np.clip(img + 0.5, 0, 65535).astype(np.uint16)
        return img


def _temporary_outputs(out: Path, names: dict[str, str], fmt: str) -> dict[str, Path]:
    """A temporary name in ``out`` for each output (a folder for an image sequence)."""
    tmp: dict[str, Path] = {}
    try:
        for key, name in names.items():
            if key == "video" and fmt != "mp4":
                tmp[key] = Path(tempfile.mkdtemp(prefix=".frames-", dir=out))
                os.chmod(tmp[key], 0o755)
                continue
            # (mkstemp alone made the outputs readable by their owner only)
            tmp[key] = temporary_sibling(out / name, suffix=Path(name).suffix)
    except OSError as e:
        _remove(tmp.values())
        raise SynthError(f"out_dir {str(out)!r} is not writable: {e.strerror or e}") from None
    return tmp


def _write_labels(path: Path, entered: list[_Obj]) -> dict[str, int]:
    """labels.csv (id,label,kind); returns the count of each kind."""
    kinds = {"normal": 0, "broken": 0, "stacked": 0}
    with open(path, "w", newline="") as fh:
        fh.write("id,label,kind\n")
        for o in entered:
            kinds[o.kind] = kinds.get(o.kind, 0) + 1
            fh.write(f"{o.id},{'normal' if o.kind == 'normal' else 'anomaly'},{o.kind}\n")
    return kinds


def write_conditions(path: Path, entered: list[_Obj]) -> None:
    """conditions.csv: ``id,blur,touching,visible`` per ground-truth id. ``blur``: ``motion`` or
    ``defocus`` for an object rendered blurred, else empty; ``touching``: the id of the object it
    touches (a touching pair), else empty (also when the other one never came into view);
    ``visible``: the share of its mask inside the view across the belt (below 1: cut by the
    frame's side for its whole passage). What the dataset's quality checks are measured against."""
    with open(path, "w", newline="") as fh:
        fh.write("id,blur,touching,visible\n")
        for o in entered:
            partner = o.partner.id if o.partner is not None and o.partner.id else ""
            fh.write(f"{o.id},{o.blur},{partner},{_fmt_vis(o.vis_across)}\n")


def _publish(tmp: dict[str, Path], names: dict[str, str], out: Path, fmt: str) -> None:
    """Each output to its name, its data on disk before the name is."""
    for key, name in names.items():
        if key == "video" and fmt != "mp4":
            _replace_dir(tmp[key], out / name)
            continue
        fsync_path(tmp[key])  # the data reaches the disk before the name does
        os.replace(tmp[key], out / name)
    fsync_directory(out)


def _remove(paths) -> None:
    for t in paths:
        with contextlib.suppress(OSError):
            if t.is_dir():
                shutil.rmtree(t)
            else:
                t.unlink()


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename the finished image folder into place (an older one is removed)."""
    fsync_directory(src)
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=".old-frames-", dir=dst.parent))
        os.replace(dst, old / "frames")
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _BackgroundWriter:
    """JPEG round-trip and mp4v encoding on a second thread (OpenCV releases the GIL)."""

    def __init__(self, path: Path, fps: float, size: tuple, jpeg_quality: int, color: bool = True):
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size, color)
        if not self.writer.isOpened():
            raise RuntimeError("cv2.VideoWriter cannot write mp4v video (OpenCV built without a video backend?)")
        self.jpeg_quality = int(jpeg_quality)
        self.read_flag = cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="synth-writer", daemon=True)
        self.thread.start()

    def _encode(self, img: np.ndarray) -> None:
        if self.jpeg_quality > 0:
            _ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            decoded = cv2.imdecode(buf, self.read_flag)
            assert decoded is not None, "the JPEG encoded just above decodes"
            img = decoded
        self.writer.write(img)

    def _run(self) -> None:
        while True:
            img = self.queue.get()
            if img is None:
                return
            if self.error is not None:
                continue
            try:
                self._encode(img)
            except BaseException as e:  # noqa: BLE001  reported to the caller by put() / close()
                self.error = e

    def put(self, img: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(img)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._release()
        if self.error is not None:
            raise self.error

    def _release(self) -> None:
        self.writer.release()


class _PngWriter(_BackgroundWriter):
    """An image sequence folder/img_%05d.png (8- or 16-bit grey, lossless) written on a second thread."""

    def __init__(self, folder: Path):
        self.folder, self.n = folder, 0
        self.queue = queue.Queue(maxsize=4)
        self.error = None
        self.thread = threading.Thread(target=self._run, name="synth-png-writer", daemon=True)
        self.thread.start()

    def _encode(self, img: np.ndarray) -> None:
        self.n += 1
        path = self.folder / f"img_{self.n:05d}.png"
        if not cv2.imwrite(str(path), img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"cannot write {path}")

    def _release(self) -> None:
        pass


def _fmt_vis(v: float) -> str:
    if v >= 1.0:
        return "1"
    s = f"{v:.5f}".rstrip("0").rstrip(".")
    return s if s not in ("0", "") else "0.00001"


def _composite(frame: np.ndarray, m: np.ndarray, a: np.ndarray, top: int, left: int) -> None:
    hh, ww = frame.shape[:2]
    ph, pw = m.shape[:2]
    y0, y1 = max(top, 0), min(top + ph, hh)
    x0, x1 = max(left, 0), min(left + pw, ww)
    if y0 >= y1 or x0 >= x1:
        return
    sub = frame[y0:y1, x0:x1]
    cv2.multiply(sub, m[y0 - top : y1 - top, x0 - left : x1 - left], dst=sub)
    cv2.add(sub, a[y0 - top : y1 - top, x0 - left : x1 - left], dst=sub)


def _visible_box(o: _Obj, u: int, L: int) -> tuple | None:
    """Canonical (u0, v0, du, dv, visibility, visible px) of the visible part of o's mask with origin
    at column u (only its rows inside the view across the belt count)."""
    assert o.colcount is not None and o.colmin is not None and o.colmax is not None, "set by _prepare"
    w = o.colcount.size
    c0, c1 = max(0, -u), min(w, L - u)
    if c0 >= c1 or not o.full_box:
        return None
    if c0 == 0 and c1 == w:
        fb = o.full_box
        return (u + fb[0], o.v + fb[1], fb[2] - fb[0], fb[3] - fb[1], o.vis_across, o.area * o.vis_across)
    cnt = o.colcount[c0:c1]
    area = int(cnt.sum())
    if area == 0:
        return None
    nz = np.flatnonzero(cnt)
    x0, x1 = c0 + int(nz[0]), c0 + int(nz[-1]) + 1
    y0 = int(o.colmin[x0:x1].min())
    y1 = int(o.colmax[x0:x1].max()) + 1
    return (u + x0, o.v + y0, x1 - x0, y1 - y0, area / o.area, area)
