"""The scene: objects made in order of arrival and placed on an endless belt.

The scene is built in a canonical orientation where the belt moves along +u (columns) and "across"
is v (rows); ``to_output`` turns a canonical image into the frame for each direction of travel and
``to_canon`` back. The new products are drawn in the frame's orientation (so that printed labels
read the right way and the shading matches the shadows) and turned into the canonical one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from conveyor_qc.evaluation.synth import objects as ob
from conveyor_qc.evaluation.synth.objects import (
    _draw_chunk_missing,
    _draw_cookie,
    _draw_split,
    _draw_stacked,
)
from conveyor_qc.evaluation.synth.photos import _photo_sprite, photo_object_sprite
from conveyor_qc.evaluation.synth.presets import Preset
from conveyor_qc.evaluation.synth.util import _crop_sprite, _shift


@dataclass
class _Obj:
    alpha: np.ndarray
    pm: np.ndarray
    kind: str
    source: str
    lift: float  # height above the belt, scales the shadow
    b: int = 0  # canonical along-belt position of the sprite origin at frame 0
    v: int = 0  # canonical across position
    product: str = "cookie"
    # filled by _prepare
    mask: np.ndarray | None = None
    patch_m: np.ndarray | None = None
    patch_a: np.ndarray | None = None
    pu: int = 0  # patch origin relative to the sprite origin
    pv: int = 0
    colcount: np.ndarray | None = None  # per column of the mask: pixels inside the view across the belt
    colmin: np.ndarray | None = None
    colmax: np.ndarray | None = None
    area: int = 0  # the whole mask's area
    vis_across: float = 1.0  # fraction of the area inside the view across the belt (< 1: cut by its sides)
    full_box: tuple = ()  # box of the mask's part inside the view across the belt (sprite coordinates)
    id: int = 0  # ground-truth id once it has entered the view
    blur: str = ""  # "motion" or "defocus" when rendered blurred (Preset.blur_share), else ""
    partner: _Obj | None = None  # the other object of a touching pair


_MAX_LIFT = 1.5  # shadow scale of the tallest objects (stacks)


# --------------------------------------------------------------------------- orientation


def to_canon(img: np.ndarray, direction: str) -> np.ndarray:
    """An image in the frame's orientation turned into the canonical one (belt moving along +u)."""
    if direction == "right":
        return img
    if direction == "left":
        return np.ascontiguousarray(img[:, ::-1])
    if direction == "down":
        return np.ascontiguousarray(np.swapaxes(img, 0, 1))
    return np.ascontiguousarray(np.swapaxes(img, 0, 1)[:, ::-1])  # up


def to_output(img: np.ndarray, direction: str) -> np.ndarray:
    """A canonical image (frame) turned into the frame's orientation."""
    if direction == "right":
        return img
    if direction == "left":
        return cv2.flip(img, 1)
    if direction == "down":
        return cv2.transpose(img)
    return cv2.transpose(cv2.flip(img, 1))  # up


def box_to_output(direction: str, L: int, u0: int, v0: int, du: int, dv: int) -> tuple:
    """A canonical box (along u0, across v0, sizes du, dv) as (x, y, w, h) in the frame."""
    if direction == "right":
        return u0, v0, du, dv
    if direction == "left":
        return L - (u0 + du), v0, du, dv
    if direction == "down":
        return v0, u0, dv, du
    return v0, L - (u0 + du), dv, du  # up


def _canon_xy(p: Preset, xy: tuple) -> tuple:
    """An (dx, dy) of the output frame in canonical (along, across) = (du, dv) order."""
    if p.direction == "left":
        return -float(xy[0]), float(xy[1])
    if p.direction == "up":
        return -float(xy[1]), float(xy[0])
    return (float(xy[0]), float(xy[1])) if p.direction == "right" else (float(xy[1]), float(xy[0]))


# --------------------------------------------------------------------------- products


@dataclass(frozen=True)
class Product:
    """A kind of product: its anomaly kinds, its height above the belt (shadow scale) and its source."""

    name: str
    anomalies: tuple
    lift: float = 1.0
    source: str = "drawn"  # "drawn"; "cookie-photos": the AWS cookie photos; "skimage": skimage/data
    description: str = ""
    scale: float = 1.0  # size against the preset's radius


PRODUCTS: dict[str, Product] = {
    pr.name: pr
    for pr in (
        Product("cookie", ("broken", "stacked"), 1.0, "drawn", "round chocolate-chip cookie"),
        Product("cookie-photo", ("broken",), 1.0, "cookie-photos", "cut-out of a real cookie photo"),
        Product(
            "choco-square",
            ("broken", "stacked"),
            1.0,
            "drawn",
            "square dark chocolate cookie, rounded corners; broken (a corner off, or in halves) or stacked",
        ),
        Product("cracker", ("broken", "burnt"), 0.8, "drawn", "pale rectangular cracker with docking holes"),
        Product("pack", ("misprint", "torn"), 1.2, "drawn", "flow-wrapped pack, stripes of 2-3 colours, a label"),
        Product("toy", ("missing-part",), 1.2, "drawn", "toy figure: head, body, two arms, two legs"),
        Product("bottle", ("no-cap",), 1.5, "drawn", "bottle lying on its side: body, neck, cap"),
        Product("lpart", ("broken", "missing-hole"), 0.8, "drawn", "flat L-shaped part with two holes"),
        Product("bag", ("torn-handle",), 1.3, "drawn", "bag with a loop handle (the loop encloses a hole)"),
        Product("coin", ("broken",), 0.6, "skimage", "coin cut out of skimage's coins.png", 0.5),
        Product("cup", ("broken",), 1.5, "skimage", "cup on its saucer cut out of skimage's coffee.png", 1.25),
        Product(
            "horse",
            ("missing-part",),
            0.9,
            "skimage",
            "skimage's horse.png silhouette filled with the wood of coffee.png (a wooden toy horse)",
            1.2,
        ),
    )
}


def products_of(p: Preset) -> tuple:
    if p.products:
        return tuple(p.products)
    return ("cookie-photo",) if p.style == "photo" else ("cookie",)


def _light_dir(p: Preset) -> tuple:
    """Unit (x, y) towards the light in the frame: opposite to where the shadows fall."""
    dx, dy = float(p.shadow_offset[0]), float(p.shadow_offset[1])
    n = math.hypot(dx, dy)
    return (-dx / n, -dy / n) if n > 0 else (0.0, 0.0)


def _make_sprite(rng: np.random.Generator, p: Preset, kind: str, photos: list | None) -> _Obj:
    r = float(rng.uniform(*p.radius))
    sh = _canon_xy(p, p.shadow_offset)
    if p.style == "photo":
        assert photos is not None, "_sources() loads the cookie photos for the photo style's products"
        pool = [ph for ph in photos if ph.anomaly == (kind != "normal")]
        photo = pool[int(rng.integers(len(pool)))]
        a, pm = _photo_sprite(rng, photo, r)
        return _Obj(a, pm, kind, photo.ref, 1.0)
    if kind == "stacked":
        a, pm = _draw_stacked(rng, r, float(rng.uniform(*p.stack_offset)), sh)
        return _Obj(a, pm, kind, "", _MAX_LIFT)
    if kind == "broken":
        if rng.random() < p.split_share:
            a, pm = _draw_split(rng, r, float(rng.uniform(*p.split_gap)))
        else:
            a, pm = _draw_chunk_missing(rng, r)
        return _Obj(a, pm, kind, "", 1.0)
    a, pm = _draw_cookie(rng, r)
    a, pm = _crop_sprite(a, pm)
    return _Obj(a, pm, kind, "", 1.0)


def _make_product(
    rng: np.random.Generator, p: Preset, pr: Product, kind: str, photos: list | None, sk: dict | None
) -> _Obj:
    """One object of product `pr` (kind "normal" or one of pr.anomalies), drawn in the frame's
    orientation, turned by up to +-p.rotation degrees, in canonical orientation."""
    r = float(rng.uniform(*p.radius)) * pr.scale
    sh = (float(p.shadow_offset[0]), float(p.shadow_offset[1]))
    anomaly = "" if kind == "normal" else kind
    lift, source = pr.lift, ""
    if pr.name == "cookie":  # the first presets' drawn cookies (round: never turned)
        if kind == "stacked":
            a, pm = _draw_stacked(rng, r, float(rng.uniform(*p.stack_offset)), sh)
            lift = _MAX_LIFT
        elif kind == "broken":
            if rng.random() < p.split_share:
                a, pm = _draw_split(rng, r, float(rng.uniform(*p.split_gap)))
            else:
                a, pm = _draw_chunk_missing(rng, r)
        else:
            a, pm = _crop_sprite(*_draw_cookie(rng, r))
    elif pr.name == "cookie-photo":
        assert photos is not None, "_sources() loads the cookie photos for a cookie-photos product"
        pool = [ph for ph in photos if ph.anomaly == (kind != "normal")]
        photo = pool[int(rng.integers(len(pool)))]
        a, pm = _photo_sprite(rng, photo, r)
        source = photo.ref
    elif pr.source == "skimage":
        assert sk is not None, "_sources() loads the skimage cut-outs for a skimage product"
        pool = sk[pr.name]
        photo = pool[int(rng.integers(len(pool)))]
        a, pm = photo_object_sprite(rng, photo, r, anomaly)
        source = photo.ref
    else:
        angle = float(rng.uniform(-p.rotation, p.rotation)) if p.rotation > 0 else 0.0
        if pr.name == "choco-square":
            if kind == "stacked":
                bottom = ob.draw_choco_square(rng, r)
                top = ob.draw_choco_square(rng, r * rng.uniform(0.93, 1.0))
                phi = rng.uniform(0, 2 * np.pi)
                off = float(rng.uniform(0.18, 0.35)) * r * 1.77
                d = ob._stack_drawn(
                    rng, bottom, top, (off * math.cos(phi), off * math.sin(phi)), float(rng.uniform(-25, 25)), sh, 7.0
                )
                lift = _MAX_LIFT
            elif kind == "broken":
                d = ob._broken_square(rng, r, p.split_share, p.split_gap)
            else:
                d = ob.draw_choco_square(rng, r)
        elif pr.name == "cracker":
            d = ob._broken_cracker(rng, r) if kind == "broken" else ob.draw_cracker(rng, r, kind == "burnt")
        elif pr.name == "pack":
            d = ob.draw_pack(rng, r, p.belt_bgr, anomaly)
        elif pr.name == "toy":
            missing = ""
            if anomaly:
                missing = ("head", "armL", "armR", "legL", "legR")[int(rng.integers(5))]
            d = ob.draw_toy(rng, r, missing)
        elif pr.name == "bottle":
            d = ob.draw_bottle(rng, r, no_cap=bool(anomaly))
        elif pr.name == "lpart":
            d = ob.draw_lpart(rng, r, anomaly)
        elif pr.name == "bag":
            d = ob.draw_bag(rng, r, torn=bool(anomaly))
        else:  # pragma: no cover - PRODUCTS and this list go together
            raise ValueError(f"no drawing for product {pr.name!r}")
        a, pm = ob.finish(d, angle, _light_dir(p))
    return _Obj(to_canon(a, p.direction), to_canon(pm, p.direction), kind, source, lift, product=pr.name)


class _Factory:
    """Makes the objects one by one: product, kind (normal or which anomaly) and sprite."""

    def __init__(self, rng: np.random.Generator, p: Preset, photos: list | None, sk: dict | None):
        self.rng, self.p, self.photos, self.sk = rng, p, photos, sk
        self.names = products_of(p)
        self.legacy = not p.products and p.direction in ("right", "down")
        # Shuffle bags keep every stretch of video close to the preset's shares (plain coin flips
        # give 12% in one 10 s clip and 38% in the next): a bag of 20 objects holds round(20 *
        # anomaly_share) anomalies, a bag of 10 anomalies round(10 * stacked_share) stacked ones.
        self.bags: dict[str, list] = {"anomaly": [], "kind": []}

    def _from_bag(self, name: str, size: int, share: float) -> bool:
        bag = self.bags[name]
        if not bag:
            if 0 < share < 1 / size:  # a rare share (2% of 20 would round to none): one in a bigger bag
                size = int(round(1 / share))
            k = int(round(size * share))
            bag.extend(self.rng.permutation(np.array([True] * k + [False] * (size - k), bool)).tolist())
        return bag.pop()

    def _kind(self) -> str:
        if self._from_bag("anomaly", 20, self.p.anomaly_share):
            return "stacked" if self._from_bag("kind", 10, self.p.stacked_share) else "broken"
        return "normal"

    def make(self) -> _Obj:
        if self.legacy:  # the first presets: exactly the draws they always made
            kind = self._kind()
            o = _make_sprite(self.rng, self.p, kind, self.photos)
            o.product = self.names[0]
            return o
        rng = self.rng
        name = self.names[int(rng.integers(len(self.names)))] if len(self.names) > 1 else self.names[0]
        pr = PRODUCTS[name]
        kind = "normal"
        if self._from_bag("anomaly", 20, self.p.anomaly_share):
            an = pr.anomalies
            if "stacked" in an and len(an) > 1:
                kind = (
                    "stacked"
                    if self._from_bag("kind", 10, self.p.stacked_share)
                    else [k for k in an if k != "stacked"][int(rng.integers(len(an) - 1))]
                )
            else:
                kind = an[int(rng.integers(len(an)))]
        return _make_product(rng, self.p, pr, kind, self.photos, self.sk)


def _mask(o: _Obj) -> np.ndarray:
    return o.alpha >= 0.5


def _touch_offset(m1: np.ndarray, m2: np.ndarray, rng: np.random.Generator) -> tuple:
    """Integer offset (du, dv) of m2's origin relative to m1's so that the masks touch without overlap."""
    h1, w1 = m1.shape
    h2, w2 = m2.shape
    c1 = np.array([w1 / 2.0, h1 / 2.0])
    c2 = np.array([w2 / 2.0, h2 / 2.0])
    ang = rng.uniform(0, 2 * np.pi)
    direction = np.array([math.cos(ang), math.sin(ang)])
    pad = max(h2, w2) + 4
    big = np.zeros((h1 + 2 * pad, w1 + 2 * pad), bool)
    big[pad : pad + h1, pad : pad + w1] = m1
    grown = cv2.dilate(big.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    last = None
    d = (max(h1, w1) + max(h2, w2)) / 2.0 + 2.0
    while d > 0:
        o = np.round(c1 + d * direction - c2).astype(int)
        ys, xs = o[1] + pad, o[0] + pad
        if ys >= 0 and ys + h2 <= big.shape[0] and xs >= 0 and xs + w2 <= big.shape[1]:
            if (big[ys : ys + h2, xs : xs + w2] & m2).any():
                break
            last = (int(o[0]), int(o[1]))
            if (grown[ys : ys + h2, xs : xs + w2] & m2).any():
                return last
        d -= 0.5
    if last is None:  # cannot happen for sane masks
        last = (w1 + 1, 0)
    return last


def _add_touching(group: list, rel: list, factory: _Factory, rng: np.random.Generator) -> None:
    """A second object made to touch the group's first (the same draws as always), each the
    other's partner: the ground truth of a touching pair."""
    group.append(factory.make())
    rel.append(_touch_offset(_mask(group[0]), _mask(group[1]), rng))
    group[0].partner, group[1].partner = group[1], group[0]


class _Placer:
    """Places groups on the endless belt so that the boxes of different groups keep min_gap apart."""

    def __init__(self, gap: int):
        self.gap = gap
        self.boxes = np.zeros((0, 4), np.int64)  # u0, v0, u1, v1 (exclusive)

    def free(self, u0: int, v0: int, u1: int, v1: int) -> bool:
        b = self.boxes
        if not len(b):
            return True
        g = self.gap
        hit = (b[:, 0] < u1 + g) & (u0 < b[:, 2] + g) & (b[:, 1] < v1 + g) & (v0 < b[:, 3] + g)
        return not bool(hit.any())

    def add(self, u0: int, v0: int, u1: int, v1: int) -> None:
        self.boxes = np.vstack([self.boxes, [[u0, v0, u1, v1]]])
        if len(self.boxes) > 400:  # far-away ones can no longer collide (cursor only moves left)
            self.boxes = self.boxes[-200:]


class _Planner:
    """Makes the objects in order of arrival and places them on the endless belt.

    Objects are made only when the belt brings them close to the view, so memory
    stays bounded for long videos, and a longer video starts like a shorter one
    with the same seed.
    """

    def __init__(self, rng: np.random.Generator, p: Preset, L: int, W: int, factory: _Factory):
        self.rng, self.p, self.factory = rng, p, factory
        self.spacing = p.belt_speed * p.fps / p.rate  # mean along-belt distance per object
        self.lo_v = p.rail_px + p.lane_margin
        self.hi_v = W - p.rail_px - p.lane_margin
        self.cursor = float(L) if p.prefill else 0.0  # right edge (along) of the next group, belt coordinates
        self.placer = _Placer(p.min_gap)

    def next_group(self) -> list:
        """One arriving object, or a pair of touching objects, placed left of the previous ones."""
        rng, p = self.rng, self.p
        while True:
            group = [self.factory.make()]
            rel = [(0, 0)]
            if rng.random() < p.touching_share:
                _add_touching(group, rel, self.factory, rng)
            gu0 = min(ru for ru, _ in rel)
            gv0 = min(rv for _, rv in rel)
            gw = max(ru + o.alpha.shape[1] for (ru, _), o in zip(rel, group, strict=True)) - gu0
            gh = max(rv + o.alpha.shape[0] for (_, rv), o in zip(rel, group, strict=True)) - gv0
            if gh <= self.hi_v - self.lo_v:
                break  # else too wide for the belt (a pair across it): make another
        self.cursor -= len(group) * self.spacing * rng.gamma(3.0, 1.0 / 3.0)
        v0 = None
        while v0 is None:
            u1 = int(math.floor(self.cursor))
            u0 = u1 - gw
            for _ in range(24):  # a random lane with room for the group
                v = int(rng.integers(self.lo_v, self.hi_v - gh + 1))
                if self.placer.free(u0, v, u1, v + gh):
                    v0 = v
                    break
            else:
                self.cursor -= 6.0  # no room across the belt here: a little further upstream
        self.placer.add(u0, v0, u1, v0 + gh)
        for (ru, rv), o in zip(rel, group, strict=True):
            o.b = u0 + ru - gu0
            o.v = v0 + rv - gv0
        return group


class _DensePlanner:
    """Packs the belt to a target coverage, from the first frame on, using the objects' masks.

    The belt is planned in chunks of about one object's length, going upstream; an object (or a
    touching pair) goes where its mask, grown by ``min_gap``, touches no object placed before (an
    exact test on an occupancy raster: so non-convex objects nest), with its leading edge in the
    chunk. Without lanes, each chunk is owed ``density`` times its area (the view's width across
    the belt, or the whole belt's when it overhangs the view) and objects go to positions drawn
    among the free ones (half of them uniformly, half the furthest downstream, which packs), until
    the debt is paid. With ``lanes``, each lane is a row: the next object of a lane is due one
    spacing (its area / (density x lane pitch), +-10%) upstream of the previous one, and goes to the
    free position nearest to that, jittered sideways by up to ``lane_jitter`` of the pitch.
    """

    def __init__(self, rng: np.random.Generator, p: Preset, L: int, W: int, factory: _Factory):
        self.rng, self.p, self.factory = rng, p, factory
        over = int(round(p.overhang * W))
        if over > 0:
            self.lo_v, self.hi_v = -over, W + over
        else:
            self.lo_v, self.hi_v = p.rail_px + p.lane_margin, W - p.rail_px - p.lane_margin
        span = self.hi_v - self.lo_v
        self.per_px = p.density * max(W, span)  # object area owed per px along the belt
        self.chunk = max(8, int(round(1.2 * p.radius[1])))
        self.g = max(0, int(p.min_gap))
        self.kernel = (
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * self.g + 1, 2 * self.g + 1)) if self.g > 0 else None
        )
        self.F = int(L + math.ceil(4.5 * p.radius[1])) if p.prefill else 0  # upstream end of the plan
        self.cursor = float(self.F)  # no object planned later reaches beyond this (along)
        self.owed = 0.0
        self.pending: tuple | None = None
        self.tries = 0
        # occupancy of the belt near the frontier: rows lo_v - pad .. hi_v + pad, columns ou .. ou + nu
        self.pad = self.g + 2
        self.ov = self.lo_v - self.pad
        self.nu = 2048
        self.ou = self.F + self.pad + 2 - self.nu
        self.occ = np.zeros((span + 2 * self.pad, self.nu), np.uint8)
        if p.lanes > 0:
            self.pitch = span / p.lanes
            self.lane_c = [self.lo_v + (k + 0.5) * self.pitch for k in range(p.lanes)]
            self.jit = max(0, int(round(p.lane_jitter * self.pitch)))
            # leading edge at which each lane's next object is due (staggered at the start)
            self.due = [self.F - float(rng.uniform(0, 1.5 * p.radius[1])) for _ in range(p.lanes)]
        else:
            self.lane_c = []

    # ---- groups
    def _group(self) -> tuple:
        """One object or a touching pair: (objects, offsets, union mask cropped, its offset)."""
        rng, p = self.rng, self.p
        group = [self.factory.make()]
        rel = [(0, 0)]
        if rng.random() < p.touching_share:
            _add_touching(group, rel, self.factory, rng)
        gu0 = min(ru for ru, _ in rel)
        gv0 = min(rv for _, rv in rel)
        rel = [(ru - gu0, rv - gv0) for ru, rv in rel]
        gw = max(ru + o.alpha.shape[1] for (ru, _), o in zip(rel, group, strict=True))
        gh = max(rv + o.alpha.shape[0] for (_, rv), o in zip(rel, group, strict=True))
        m = np.zeros((gh, gw), np.uint8)
        for (ru, rv), o in zip(rel, group, strict=True):
            om = _mask(o)
            m[rv : rv + om.shape[0], ru : ru + om.shape[1]] |= om.astype(np.uint8)
        ys, xs = np.nonzero(m)
        r0, c0 = int(ys.min()), int(xs.min())
        m = np.ascontiguousarray(m[r0 : int(ys.max()) + 1, c0 : int(xs.max()) + 1])
        grown = (
            m
            if self.kernel is None
            else cv2.dilate(
                cv2.copyMakeBorder(m, self.g, self.g, self.g, self.g, cv2.BORDER_CONSTANT, value=0), self.kernel
            )
        )
        return group, rel, m, (c0, r0), grown, float(m.sum())

    # ---- occupancy
    def _ensure(self, lo_u: int, hi_u: int) -> None:
        if lo_u >= self.ou and hi_u <= self.ou + self.nu:
            return
        nu = max(self.nu, 2 * (hi_u - lo_u) + 64)
        ou = hi_u - nu
        occ = np.zeros((self.occ.shape[0], nu), np.uint8)
        a0, a1 = max(ou, self.ou), min(ou + nu, self.ou + self.nu)
        if a0 < a1:
            occ[:, a0 - ou : a1 - ou] = self.occ[:, a0 - self.ou : a1 - self.ou]
        self.occ, self.ou, self.nu = occ, ou, nu

    def _free(self, m: np.ndarray, grown: np.ndarray, u_min: int, u_max: int, a: int, b: int) -> tuple:
        """Free origins (u in [u_min, u_max], v in [a, b]) of the cropped mask: (region, map, free ids)."""
        g = self.g
        w = m.shape[1]
        self._ensure(u_min - g - 1, u_max + w + g + 1)
        r0, c0 = a - g - self.ov, u_min - g - self.ou
        region = self.occ[r0 : r0 + (b - a) + grown.shape[0], c0 : c0 + (u_max - u_min) + grown.shape[1]]
        res = cv2.matchTemplate(region.astype(np.float32), grown.astype(np.float32), cv2.TM_CCORR)
        return region, res, np.flatnonzero(res.ravel() < 0.5)

    def _pick(self, region, res, free, grown, order) -> tuple | None:
        """The first free position in `order` (indices into `free`) that the exact test confirms."""
        for k in order:
            i, j = divmod(int(free[k]), res.shape[1])
            if not (region[i : i + grown.shape[0], j : j + grown.shape[1]] & grown).any():
                return i, j
        return None

    def _place_free(self, m: np.ndarray, grown: np.ndarray, lo_u: int, hi_u: int) -> tuple | None:
        """Origin (u, v) of the cropped mask with its leading edge in (lo_u, hi_u], anywhere across."""
        h, w = m.shape
        u_min, u_max = lo_u - w + 1, hi_u - w
        a, b = self.lo_v, self.hi_v - h  # the mask stays on the belt
        if a > b:
            return None
        region, res, free = self._free(m, grown, u_min, u_max, a, b)
        if not free.size:
            return None
        if self.rng.random() < 0.5:  # uniformly among the free positions
            order = self.rng.permutation(free.size)
        else:  # the furthest downstream (ties at random)
            cols = free % res.shape[1]
            order = np.lexsort((self.rng.random(free.size), -cols))
        ij = self._pick(region, res, free, grown, order)
        return None if ij is None else (u_min + ij[1], a + ij[0])

    def _place_lane(self, m: np.ndarray, grown: np.ndarray, lane: int, lo_u: int, hi_u: int) -> tuple | None:
        """Origin (u, v) of the cropped mask in `lane`, its leading edge in (lo_u, hi_u] nearest the due one."""
        h, w = m.shape
        u_min, u_max = lo_u - w + 1, hi_u - w
        c = int(round(self.lane_c[lane] - h / 2.0))
        a, b = max(self.lo_v, c - self.jit), min(self.hi_v - h, c + self.jit)
        if a > b:
            return None
        region, res, free = self._free(m, grown, u_min, u_max, a, b)
        if not free.size:
            return None
        want_j = self.due[lane] - w - u_min  # column of the due leading edge
        want_i = float(self.rng.uniform(0, b - a + 1))
        rows, cols = np.divmod(free, res.shape[1])
        order = np.argsort(np.abs(cols - want_j) + 0.3 * np.abs(rows - want_i) + self.rng.random(free.size) * 0.5)
        ij = self._pick(region, res, free, grown, order)
        return None if ij is None else (u_min + ij[1], a + ij[0])

    def _put(self, pending: tuple, u: int, v: int, placed: list) -> None:
        group, rel, m, (c0, r0), _, _ = pending
        self.occ[v - self.ov : v - self.ov + m.shape[0], u - self.ou : u - self.ou + m.shape[1]] |= m
        for (ru, rv), o in zip(rel, group, strict=True):
            o.b, o.v = u - c0 + ru, v - r0 + rv
            placed.append(o)

    def next_group(self) -> list:
        """The objects of the next chunk upstream (possibly none)."""
        lo_u, hi_u = self.F - self.chunk, self.F
        placed: list = []
        if self.lane_c:
            for lane in self.rng.permutation(len(self.lane_c)):
                while self.due[lane] > lo_u:
                    if self.pending is None:
                        self.pending, self.tries = self._group(), 0
                    m, grown, area = self.pending[2], self.pending[4], self.pending[5]
                    pos = self._place_lane(m, grown, int(lane), lo_u, hi_u)
                    if pos is None:
                        self.tries += 1
                        if self.tries >= 4:
                            self.pending = None  # it fits nowhere: never mind it
                        break
                    self._put(self.pending, pos[0], pos[1], placed)
                    self.pending = None
                    lead = pos[0] + m.shape[1]
                    self.due[lane] = min(self.due[lane], lead) - area / (self.p.density * self.pitch) * float(
                        self.rng.uniform(0.9, 1.1)
                    )
        else:
            self.owed = min(self.owed + self.per_px * self.chunk, 2.5 * self.per_px * self.chunk)
            while self.owed > 0:
                if self.pending is None:
                    self.pending, self.tries = self._group(), 0
                m, grown, area = self.pending[2], self.pending[4], self.pending[5]
                pos = self._place_free(m, grown, lo_u, hi_u)
                if pos is None:  # the chunk is full: this group waits for the next one
                    self.tries += 1
                    if self.tries >= 4:
                        self.pending = None
                    break
                self._put(self.pending, pos[0], pos[1], placed)
                self.pending = None
                self.owed -= area
        self.F = lo_u
        self.cursor = float(self.F)
        return placed


BLUR_KINDS = ("motion", "defocus")


def blur_sprite(o: _Obj, kind: str, size: float) -> None:
    """Render ``o`` blurred: out of focus (a disc of radius ``size``) or smeared by its own motion
    along the belt (a line of length 2 ``size`` + 1). Alpha and the pre-multiplied colour are
    blurred alike (so it composites as a blurred photograph would), on a sprite grown by the
    kernel's reach, its origin moved back by as much: the object stays where it was placed."""
    reach = int(math.ceil(size)) + 1
    side = 2 * reach + 1
    kernel = np.zeros((side, side), np.float32)
    if kind == "motion":  # canonical orientation: the belt moves along the columns
        kernel[reach, reach - int(round(size)) : reach + int(round(size)) + 1] = 1.0
    else:
        cv2.circle(kernel, (reach, reach), int(round(size)), 1.0, -1, cv2.LINE_AA)
    kernel /= float(kernel.sum())
    grow = (reach, reach, reach, reach)
    alpha = cv2.copyMakeBorder(o.alpha, *grow, cv2.BORDER_CONSTANT, value=0)
    pm = cv2.copyMakeBorder(o.pm, *grow, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    o.alpha = cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    o.pm = cv2.filter2D(pm, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    o.b -= reach
    o.v -= reach
    o.blur = kind


def _prepare(o: _Obj, p: Preset, W: int | None = None) -> None:
    """Mask statistics for the ground truth and the pre-multiplied (M, A) patch with the shadow.

    W: the view's size across the belt; the statistics count only the mask's rows inside it
    (an object on a belt wider than the view is cut by the frame's sides for its whole passage).
    """
    a, pm = o.alpha, o.pm
    h, w = a.shape
    m = a >= 0.5
    o.mask = m
    o.area = int(m.sum())
    mv = m
    if W is not None and (o.v < 0 or o.v + h > W):
        mv = m.copy()
        mv[: max(0, -o.v)] = False
        mv[max(0, W - o.v) :] = False
    o.colcount = mv.sum(axis=0).astype(np.int64)
    rows = np.arange(h)[:, None]
    o.colmin = np.where(mv, rows, h).min(axis=0)
    o.colmax = np.where(mv, rows, -1).max(axis=0)
    vis = int(o.colcount.sum())
    o.vis_across = 1.0 if vis == o.area else vis / max(o.area, 1)
    cols = np.flatnonzero(o.colcount)
    if cols.size:
        o.full_box = (int(cols[0]), int(o.colmin.min()), int(cols[-1]) + 1, int(o.colmax.max()) + 1)
    else:
        o.full_box = ()  # wholly outside the view across the belt: never in the ground truth
    du, dv = _canon_xy(p, p.shadow_offset)
    du, dv = du * o.lift, dv * o.lift
    sig = p.shadow_blur * (1.0 + 0.3 * (o.lift - 1.0))
    pad = int(math.ceil(max(abs(du), abs(dv)) + 3.0 * sig)) + 1
    hp, wp = h + 2 * pad, w + 2 * pad
    # the shadow is the object's own silhouette, a little grown, displaced and blurred
    sil = cv2.dilate(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    sh = np.zeros((hp, wp), np.float32)
    sh[pad : pad + h, pad : pad + w] = sil
    sh = cv2.GaussianBlur(_shift(sh, du, dv), (0, 0), sig)
    ap = np.zeros((hp, wp), np.float32)
    ap[pad : pad + h, pad : pad + w] = a
    mm = (1.0 - p.shadow_strength * sh) * (1.0 - ap)
    aa = np.zeros((hp, wp, 3), np.float32)
    aa[pad : pad + h, pad : pad + w] = pm
    ys, xs = np.nonzero((mm < 0.998) | (ap > 0))
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    o.patch_m = np.ascontiguousarray(np.repeat(mm[y0:y1, x0:x1, None], 3, axis=2))
    o.patch_a = np.ascontiguousarray(aa[y0:y1, x0:x1])
    o.pu, o.pv = x0 - pad, y0 - pad
    o.alpha = o.pm = None  # type: ignore[assignment]  # no longer needed: nothing reads the sprite after this
