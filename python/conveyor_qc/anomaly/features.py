"""What a crop shows, as the embedded model reads it: its object's outline and 39 figures about it.

The work is the C++ core's (``cpp/include/conveyor_qc/crop_reader.hpp`` says how the object is
found and what each figure measures), outside the GIL: the model judges on a thread of its own
beside the loop over frames. In short, a crop (a letterboxed square from ``run``, or a photo of one
object on a tray) loses its black padding; every pixel is measured by its Lab distance to the
crop's border (the belt or the tray), Otsu's threshold splits object from background, and the
component nearest the middle is the object. Its figures:

- **shape**: area, solidity, circularity, convexity defects, hull gap, the ellipse's axis ratio,
  the spread of the radius, holes, pieces, cracks where the background shows through;
- **colour**: Lab mean and spread inside the object;
- **texture**: gradient magnitude, Canny edge density, dark pixels, local binary patterns.

These figures were chosen for cookies; what the model learns of any other product comes mostly
from :mod:`conveyor_qc.anomaly.patches`, which turns the object by its outline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conveyor_qc import _core

__all__ = ["FEATURE_NAMES", "CropOutline", "crop_features", "features_of", "read_crop"]

FEATURE_NAMES: tuple[str, ...] = tuple(_core.CROP_FIGURE_NAMES)


def _reader(*, figures: bool, area_resize: bool = False) -> _core.CropReader:
    params = _core.CropReadParams()
    params.figures = figures
    params.area_resize = area_resize
    return _core.CropReader(params)


# The readers keep no state: one of each serves every thread.
_OUTLINE = _reader(figures=False)
_OUTLINE_AND_FIGURES = _reader(figures=True)
# As format-1 models were trained: the crop's content resized by pixel area.
_FORMAT_1 = _reader(figures=True, area_resize=True)


@dataclass
class CropOutline:
    """A crop's object as its frame needs it: the region measured and the object's outline."""

    region: np.ndarray  # the crop's content, its long side scaled to 256 px (BGR)
    outline: np.ndarray  # uint8 0/255, region's size: the object, holes filled
    content_at: tuple[int, int]  # where region's content starts in the crop (x, y)
    region_scale: float  # region pixels per crop pixel


def _checked(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("a crop must be a BGR uint8 HxWx3 image")
    return np.ascontiguousarray(image)


def _figures(reading: _core.CropReading) -> np.ndarray:
    """The figures, zeros where the crop has no object to measure."""
    return np.zeros(len(FEATURE_NAMES)) if reading.figures is None else reading.figures


def read_crop(image: np.ndarray, figures: bool = False) -> tuple[CropOutline | None, np.ndarray | None]:
    """The crop's object's outline (None when there is none) and, with ``figures``, its 39 figures
    (zeros without an object), from one pass over the crop."""
    reading = (_OUTLINE_AND_FIGURES if figures else _OUTLINE).read(_checked(image))
    found = (
        None
        if reading.outline is None
        else CropOutline(reading.region, reading.outline, reading.content_at, reading.region_scale)
    )
    return found, _figures(reading) if figures else None


def crop_features(image: np.ndarray) -> np.ndarray:
    """The figures (FEATURE_NAMES) of one BGR uint8 crop, as format-1 models read them."""
    return _figures(_FORMAT_1.read(_checked(image)))


def features_of(images: list[np.ndarray]) -> np.ndarray:
    """(N, F) figures of N crops, as format-1 models read them."""
    if not images:
        return np.zeros((0, len(FEATURE_NAMES)))
    return np.stack([crop_features(im) for im in images])
