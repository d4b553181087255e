"""Synthetic conveyor-belt videos with exact ground truth.

``synthesize(out_dir, preset, seed, seconds)`` renders a belt carrying products past a fixed
camera and writes, atomically:

* ``video.mp4``  - the video (``mp4v``; BGR, or grey with B = G = R for a monochrome camera), or
  with ``output_format`` "png8" / "png16" the grey image sequence ``frames/img_%05d.png``,
* ``gt.txt``     - MOTChallenge ground truth ``frame,id,x,y,w,h,1,1,visibility``:
  frame and id 1-based (ids in order of entry), the box is the *visible* part
  of the object (clipped to the frame, from the object's own alpha mask), and
  visibility is the visible fraction of the object's area,
* ``labels.csv`` - ``id,label,kind`` with label ``normal|anomaly`` and kind ``normal`` or the
  anomaly (``broken``, ``stacked``, ``burnt``, ``misprint``, ``torn``, ``missing-part``, ``no-cap``,
  ``missing-hole``, ``torn-handle``).

Modules: ``presets`` (Preset, PRESETS, SynthResult), ``objects`` (drawn product sprites),
``photos`` (sprites and belt textures from real photographs), ``belt`` (belt textures, patterns,
rails, light), ``scene`` (products, orientation, placement), ``render`` (synthesize() and the
writers). Every option and preset: docs/synth.md.

How it works. The scene is rendered in a canonical orientation where the belt moves along +u
(columns) and "across" is v (rows); the other directions of travel are transposes / mirror images
of it. Every object (sprite with alpha, plus its soft shadow) is rendered once into a
pre-multiplied patch ``(M, A)`` so that compositing is a single ``frame = frame * M + A`` per
visible object and frame. Objects all move with the belt by the same whole-pixel shift each frame
(the rounded cumulative shift, so non-integer speeds stay exact), so their relative positions are
fixed: they are placed once on an endless belt, either arriving at a rate with disjoint boxes (the
first presets) or packed to a target coverage by their masks (``density``). A broken cookie split
in two, or two stacked cookies, is ONE object (one id, the union box). Shadows and crumbs are not
part of an object. The belt texture is a periodic strip scrolled by the same shift, so the belt
(with its seams, stains and crumbs) visibly moves with the objects; the light does not.

Everything random comes from one ``numpy`` Generator tree seeded by ``seed``: the same seed gives
the same ground truth (and the same frames); the output format and the camera (colour or
monochrome) do not change the ground truth.

Photo credits:

* the "light-on-dark" and "photo-dense" presets paste cut-outs of real cookie photos from the AWS
  Lookout for Vision samples (aws-samples/amazon-lookout-for-vision,
  computer-vision-defect-detection/cookie-dataset), licensed CC BY-SA 4.0, downscaled; they ship
  with the package (``conveyor_qc/data/aws-cookies``, with their NOTICE), or are read from
  ``$CONVEYOR_QC_SHARED/data/aws-cookies`` when that is set;
* the "photo-objects" preset and photo belts use sample images bundled with scikit-image
  (``skimage/data``, BSD-3-Clause package; the images' own terms, from scikit-image's docs):
  coins.png (Greek coins from Pompeii, Brooklyn Museum Collection, no known copyright
  restrictions), coffee.png (courtesy of Pikolo Espresso Bar, CC0 by Rachel Michetti), horse.png
  (openclipart, CC0 by Andreas Preuss), gravel.png (CC0Textures "Gravel04", CC0), brick.png
  (CC0Textures "Bricks25", CC0), grass.png (DeviantArt linolafett "Grass-01", CC0).
"""

from conveyor_qc.evaluation.synth.presets import (
    PRESETS,
    Preset,
    SynthDataError,
    SynthError,
    SynthResult,
)
from conveyor_qc.evaluation.synth.render import synthesize
from conveyor_qc.shared import SHARED_ENV, cookie_photos_dir

__all__ = [
    "PRESETS",
    "SHARED_ENV",
    "Preset",
    "SynthDataError",
    "SynthError",
    "SynthResult",
    "cookie_photos_dir",
    "synthesize",
]
