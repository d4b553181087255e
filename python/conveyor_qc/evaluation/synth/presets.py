"""The parameters of a synthetic video (``Preset``), the named presets (``PRESETS``),
what ``synthesize()`` returns (``SynthResult``) and where the real photos live."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from conveyor_qc.errors import ConveyorQCError

DIRECTIONS = ("right", "left", "down", "up")
FORMATS = ("mp4", "png8", "png16")
BELT_PATTERNS = ("plain", "modular", "photo")


@dataclass(frozen=True)
class Preset:
    """Every parameter of a synthetic video. Lengths in pixels, colours BGR 0-255.

    The defaults of every field added after the first four presets keep those presets'
    output unchanged (same gt.txt, labels.csv and frames for the same seed).
    """

    name: str
    description: str = ""
    # --- video -------------------------------------------------------------------
    width: int = 1280  # frame width
    height: int = 720  # frame height
    fps: float = 30.0  # frames per second written into the mp4
    seconds: float = 20.0  # default duration when synthesize(seconds=None)
    # direction of travel in the frame: "right" (enter at the left), "left" (enter at the right),
    # "down" (enter at the top), "up" (enter at the bottom)
    direction: str = "right"
    # --- belt --------------------------------------------------------------------
    belt_speed: float = 8.0  # belt (and object) speed, px per frame (non-integer: the cumulative shift is rounded)
    belt_bgr: tuple = (182, 193, 200)  # mean belt colour (light grey/beige)
    belt_texture: float = 1.0  # strength of the moving belt texture (grain, streaks, blotches, specks); 0 = flat
    # "plain": today's fabric belt; "modular": a plastic modular belt (module joints across the belt,
    # staggered module edges along it, rows of openings showing the darker underside); "photo": a belt
    # textured from a real photograph (belt_photo), tiled seamlessly with mirroring
    belt_pattern: str = "plain"
    belt_pitch: float = 36.0  # modular belt: module length along the belt (also the rows of openings), px
    belt_photo: str = "gravel"  # photo belt: a texture bundled with scikit-image (gravel, brick, grass)
    belt_photo_scale: float = 1.0  # photo belt: zoom of the photograph
    seams: float = 0.0  # distance between seams (lines across the belt), px; 0 = none
    stains: float = 0.0  # soft darker / discoloured blotches per megapixel of belt; 0 = none
    crumbs: float = 0.0  # crumbs (small fragments in the products' colour) per megapixel of belt; 0 = none
    rail_px: int = 34  # width of the static side rails along both belt edges (0 = none)
    rail_bgr: tuple = (118, 120, 122)  # rail colour
    # --- light (static in the image: it does not move with the belt) --------------
    vignette: float = 0.10  # brightness loss in the frame corners (lens / lighting fall-off), fraction
    light_gradient: float = 0.0  # brightness loss from one side of the frame to the other, fraction; 0 = none
    light_angle: float = 90.0  # direction the light falls off towards, degrees in the frame (0: +x, 90: +y)
    color_cast: float = 0.0  # a slowly varying colour tint across the frame, fraction per channel; 0 = none
    prefill: bool = True  # the belt already carries objects on frame 1 (else it starts empty)
    # --- objects -----------------------------------------------------------------
    style: str = "drawn"  # "drawn": procedural cookies; "photo": cut-outs of the real cookie photos
    # product kinds on the belt, drawn uniformly per object (repeat a name to weigh it); () = the style's
    # cookies. Names: see conveyor_qc.synth.objects.PRODUCTS
    products: tuple = ()
    rate: float = 3.0  # mean number of objects entering the view per second (when density is 0)
    # target fraction of the view covered by objects (their masks), from the first frame to the last;
    # 0 = objects arrive at `rate` instead. Placement then uses the objects' masks, so that
    # non-convex objects can nest
    density: float = 0.0
    lanes: int = 0  # density placement: 0 = anywhere across the belt; N = N rows (lanes) along the belt
    lane_jitter: float = 0.08  # sideways jitter of an object in its lane, fraction of the lane pitch
    # the belt (and its lanes) extends beyond both sides of the view by this fraction of the view's
    # width across the belt (rail_px must be 0): objects there are cut by the frame for their whole
    # passage. With N lanes, overhang = 0.5 / (N - 1) centres the outer lanes on the frame's sides
    overhang: float = 0.0
    radius: tuple = (40.0, 55.0)  # object size: radius of drawn cookies; other products: equivalent-disc radius
    rotation: float = 0.0  # drawn products turn by up to +- this many degrees (180 = any orientation)
    lane_margin: int = 8  # minimum distance between an object and the belt edge (rails)
    # minimum clearance between two objects that do not touch: between their boxes (rate placement)
    # or their masks (density placement)
    min_gap: int = 8
    touching_share: float = 0.12  # chance that an object arrives as a pair of two objects just touching
    anomaly_share: float = 0.25  # chance that an object is an anomaly
    # chance that an object is rendered blurred (out of focus, or smeared along the belt by its own
    # motion), for measuring the dataset's quality checks; 0 = none. With a share, the clip also gets
    # conditions.csv (which objects are blurred, touching or cut). Its draws come from a stream of
    # their own: the clip is otherwise the one the same seed gives without blur
    blur_share: float = 0.0
    blur_px: tuple = (3.0, 6.0)  # blur size: the defocus disc's radius, half the motion smear's length
    stacked_share: float = 0.4  # among anomalies of stackable products: share of "stacked"
    split_share: float = 0.5  # among "broken": share split in two halves with a gap (else: a chunk missing)
    split_gap: tuple = (3.0, 6.0)  # gap between the two halves of a split cookie
    stack_offset: tuple = (0.3, 0.5)  # offset of the top cookie of a stack, fraction of the radius
    # --- shadows -----------------------------------------------------------------
    shadow_offset: tuple = (5.0, 7.0)  # shadow displacement (dx, dy) in the output frame (the light's direction)
    shadow_blur: float = 5.0  # gaussian sigma of the shadow edge
    shadow_strength: float = 0.42  # darkening at the shadow's core, fraction
    # --- camera ------------------------------------------------------------------
    noise_sigma: float = 2.5  # gaussian sensor noise, grey levels, fresh each frame
    jpeg_quality: int = 80  # JPEG round-trip of each frame before mp4 encoding (0 = off; never for png)
    flicker: float = 0.0  # frame-to-frame global brightness variation (std, fraction)
    motion_blur: int = 0  # length of the box blur along the motion, px (0 or 1 = none)
    mono: bool = False  # a monochrome camera: grey frames (the mp4's frames have B = G = R)
    # "mp4": video.mp4; "png8" / "png16": frames/img_%05d.png, 8-bit or 16-bit grey (implies mono;
    # 16-bit: the full range, value * 257 plus the camera's own fine noise)
    output_format: str = "mp4"


@dataclass(frozen=True)
class SynthResult:
    """What synthesize() wrote."""

    out_dir: Path
    video: Path  # video.mp4, or the image sequence's pattern frames/img_%05d.png
    gt: Path
    labels: Path
    preset: str
    seed: int
    frames: int
    fps: float
    size: tuple  # (width, height)
    objects: int  # ground-truth ids
    anomalies: int  # ids labelled anomaly
    kinds: dict  # {"normal": n, "broken": n, "stacked": n, ...any other anomaly kind: n}
    sources: tuple = ()  # per id (index id - 1): source photo ("images/x.jpg", "skimage:coins.png") or ""
    products: tuple = ()  # per id: the product ("cookie", "cracker", ...)
    areas: tuple = ()  # per id: the area of the object's whole mask, px
    coverage: tuple = field(default=(), repr=False)  # per frame: fraction of the view covered by object masks
    output_format: str = "mp4"
    conditions: Path | None = None  # conditions.csv (written with a blur_share), else None


class SynthError(ConveyorQCError, ValueError):
    """A synthetic clip cannot be made as asked (a bad argument or preset); the message says which."""


class SynthDataError(SynthError, FileNotFoundError):
    """The real photos (or the package that ships them) needed by a preset are missing."""


_LEGACY = (
    Preset(
        name="cookies",
        description="The demo: chocolate-chip cookies on a light beige belt, entering from the left, "
        "1280x720 at 30 fps, ~3 cookies/s at 8 px/frame, 25% anomalies (broken or stacked).",
    ),
    Preset(
        name="vertical",
        description="A vertical section of belt: the cookies enter at the top and move down "
        "(720x1280 portrait); otherwise like 'cookies'.",
        width=720,
        height=1280,
        direction="down",
    ),
    Preset(
        name="light-on-dark",
        description="Real cookie photos (AWS Lookout for Vision samples, CC BY-SA 4.0) cut out and "
        "pasted on a dark belt; anomaly photos give 'broken' anomalies.",
        style="photo",
        belt_bgr=(54, 56, 58),
        belt_texture=0.7,
        rail_bgr=(96, 98, 100),
        rate=2.5,
        radius=(45.0, 55.0),
        stacked_share=0.0,
        touching_share=0.10,
        shadow_strength=0.5,
        shadow_blur=4.0,
        noise_sigma=3.0,
    ),
    Preset(
        name="hard",
        description="Crowded belt with many touching pairs, flickering light, motion blur along the "
        "motion and strong noise.",
        belt_speed=10.0,
        rate=6.0,
        min_gap=4,
        touching_share=0.35,
        noise_sigma=6.0,
        flicker=0.06,
        motion_blur=9,
        vignette=0.18,
        jpeg_quality=70,
    ),
)

# Real-line conditions: each preset reproduces one condition the first four do not have.
_REAL_LINE = (
    Preset(
        name="dense",
        description="A crowded line: drawn cookies covering 40-60% of the view from the first frame to the "
        "last (placed by their masks, 6 px apart or touching), on the demo's belt.",
        density=0.5,
        min_gap=5,
        touching_share=0.15,
    ),
    Preset(
        name="uneven-light",
        description="Uneven lighting: the demo's cookies under light falling off ~25% towards the corners, "
        "30% darker across the belt from top to bottom, with a slight colour cast.",
        vignette=0.25,
        light_gradient=0.30,
        light_angle=90.0,
        color_cast=0.05,
    ),
    Preset(
        name="seed-line",
        description="The seed's real footage: square dark chocolate cookies in rows on a white belt, 1920x1080 at "
        "60 fps, 1.5 px/frame, covering ~45% of the view from the first frame, light falling off ~25% towards the "
        "corners, crumbs on the belt, some cookies broken or stacked, the outer rows cut by the frame's top and "
        "bottom edges (the camera sees less than the belt's width), no rails.",
        width=1920,
        height=1080,
        fps=60.0,
        belt_speed=1.5,
        belt_bgr=(226, 229, 231),
        belt_texture=0.6,
        crumbs=60.0,
        stains=1.5,
        rail_px=0,
        vignette=0.25,
        products=("choco-square",),
        density=0.45,
        lanes=6,
        lane_jitter=0.05,
        overhang=0.1,
        radius=(78.0, 88.0),
        rotation=8.0,
        min_gap=10,
        touching_share=0.04,
        anomaly_share=0.2,
        stacked_share=0.4,
        split_share=0.5,
        shadow_offset=(4.0, 6.0),
        shadow_strength=0.35,
        shadow_blur=6.0,
        noise_sigma=2.0,
        jpeg_quality=85,
    ),
    Preset(
        name="crackers-up",
        description="Light crackers with docking holes on a blue belt with splice seams, moving from the bottom "
        "to the top, turned up to 20 degrees; anomalies broken or burnt.",
        direction="up",
        products=("cracker",),
        belt_bgr=(150, 96, 42),
        belt_texture=0.8,
        seams=700.0,
        rail_bgr=(110, 112, 115),
        rate=4.0,
        radius=(42.0, 52.0),
        rotation=20.0,
        stacked_share=0.0,
    ),
    Preset(
        name="mesh-packs",
        description="Two-colour striped packs with a printed label (a stripe or the label sometimes the belt's "
        "own colour) on a gridded plastic modular belt with openings, moving from right to left.",
        direction="left",
        products=("pack",),
        belt_pattern="modular",
        belt_pitch=34.0,
        belt_bgr=(205, 200, 192),
        belt_texture=0.8,
        rate=3.0,
        radius=(44.0, 54.0),
        rotation=25.0,
        stacked_share=0.0,
        touching_share=0.1,
    ),
    Preset(
        name="lateral-cut",
        description="A belt wider than the view, no rails: cookies in 6 rows, the outer rows centred on the "
        "frame's top and bottom edges, so their cookies are cut (mostly 40-70% visible) for their whole passage; "
        "~40% of the view covered.",
        rail_px=0,
        density=0.4,
        lanes=6,
        lane_jitter=0.06,
        overhang=0.1,
        min_gap=8,
        touching_share=0.0,
    ),
    Preset(
        name="mono",
        description="A monochrome camera: grey frames (B = G = R in video.mp4; --format png8|png16 writes an "
        "8-/16-bit grey image sequence) of the demo's cookies with their shadows, light falling off 20% "
        "towards the corners.",
        mono=True,
        vignette=0.2,
        noise_sigma=2.0,
    ),
    Preset(
        name="toys",
        description="Toy figures (head, body, two arms, two legs in random poses; anomaly: a missing limb or head) "
        "in any orientation, many touching pairs, on a blue-grey belt.",
        products=("toy",),
        belt_bgr=(140, 124, 108),
        belt_texture=0.8,
        rail_bgr=(90, 92, 95),
        density=0.3,
        radius=(48.0, 58.0),
        rotation=180.0,
        min_gap=6,
        touching_share=0.3,
    ),
    Preset(
        name="parts",
        description="L-shaped parts with holes, bottles lying on their side and bags with a loop handle (a hole "
        "showing the belt), in any orientation on a dark belt moving from top to bottom.",
        direction="down",
        products=("lpart", "bottle", "bag"),
        belt_bgr=(46, 46, 49),
        belt_texture=0.8,
        rail_bgr=(100, 102, 105),
        density=0.3,
        radius=(44.0, 54.0),
        rotation=180.0,
        min_gap=8,
        touching_share=0.1,
        shadow_strength=0.5,
    ),
    Preset(
        name="photo-dense",
        description="The 63 real cookie photos (AWS Lookout for Vision samples, CC BY-SA 4.0) cut out and packed "
        "densely (~45% of the view) on a plain light belt; anomaly photos give 'broken' anomalies.",
        style="photo",
        belt_bgr=(188, 198, 204),
        density=0.45,
        radius=(45.0, 55.0),
        min_gap=5,
        touching_share=0.12,
        stacked_share=0.0,
        noise_sigma=3.0,
    ),
    Preset(
        name="photo-objects",
        description="Objects cut out of scikit-image's bundled photographs (coins from coins.png, the cup on its "
        "saucer from coffee.png, horse.png's silhouette in the wood of coffee.png) on a belt textured from "
        "gravel.png, moving from right to left.",
        direction="left",
        products=("coin", "coin", "horse", "cup"),
        belt_pattern="photo",
        belt_photo="gravel",
        belt_photo_scale=0.75,
        belt_bgr=(112, 116, 120),
        rail_bgr=(80, 82, 85),
        density=0.3,
        radius=(50.0, 60.0),
        min_gap=8,
        touching_share=0.1,
        shadow_strength=0.45,
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in _LEGACY + _REAL_LINE}


def with_anomaly_share(preset: str | Preset, share: float) -> Preset:
    """The preset (a name or a Preset) with ``share`` of its objects anomalies: e.g. 0.02-0.05 for
    a line where anomalies are rare (the labelling page's measurement, docs/labelling.md). Any
    share in (0, 1] is met over a clip (a bag of 20 objects holds round(20 * share) anomalies;
    below 1 in 20, one in a bag of round(1 / share))."""
    chosen, share = _checked_share(preset, share, "the anomaly share")
    return dataclasses.replace(chosen, anomaly_share=share)


def _checked_share(preset: str | Preset, share: float, what: str) -> tuple[Preset, float]:
    """The Preset a name (or a Preset) means, and ``share`` once it is known to be in [0, 1]."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise SynthError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    if not 0 <= share <= 1:
        raise SynthError(f"{what} must be in [0, 1], not {share!r}")
    return preset, float(share)


def with_blur_share(preset: str | Preset, share: float) -> Preset:
    """The preset (a name or a Preset) with ``share`` of its objects rendered blurred (out of focus
    or smeared by motion) and the clip's ``conditions.csv`` saying which: a clip with known bad crops
    for the dataset's quality checks (docs/dataset.md, "Crops that mislead a model")."""
    chosen, share = _checked_share(preset, share, "the blur share")
    return dataclasses.replace(chosen, blur_share=share)
