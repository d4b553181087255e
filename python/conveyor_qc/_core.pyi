"""
conveyor-qc's C++ core: masks, connected components, the multi-tracker and the counting line.
"""

from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing

__all__: list[str] = [
    "CROP_FIGURE_NAMES",
    "BeltStats",
    "ComponentNote",
    "CountParams",
    "CropReadParams",
    "CropReader",
    "CropReading",
    "Crossing",
    "DetectParams",
    "Detection",
    "Detections",
    "Detector",
    "FinishedObject",
    "FrameTracks",
    "InputError",
    "MaskBuilder",
    "MaskParams",
    "ParamError",
    "Pipeline",
    "PipelineParams",
    "StreamEnd",
    "TrackParams",
    "count_line_segment",
    "downscale",
    "format_decimal2",
    "mot_lines",
    "predict_crossing",
]

class BeltStats:
    """
    The figures the learnt belt model judged by (belt_model.hpp).
    """
    def as_dict(self) -> dict:
        """
        The figures as a dict, in the order summary.json gives them.
        """
    @property
    def ambiguous_share(self) -> float:
        """
        share of learnt pixels seen as both
        """
    @property
    def belt_lab(self) -> tuple[float, float, float]:
        """
        the belt's Lab colour in the light of the frame's centre
        """
    @property
    def belt_region(self) -> float:
        """
        share of the first frame in the belt's largest region
        """
    @property
    def belt_sigma(self) -> tuple[float, float, float]:
        """
        its noise per Lab channel
        """
    @property
    def candidates(self) -> int:
        """
        colour modes considered for the belt
        """
    @property
    def colour(self) -> bool:
        """
        the frames carry colour (false: monochrome)
        """
    @property
    def frames_learnt(self) -> int:
        """
        0: not learnt (threshold mode, or no frame yet)
        """
    @property
    def light_range(self) -> float:
        """
        brightest / darkest point of the light field
        """
    @property
    def object_components(self) -> int:
        """
        product components while learning
        """
    @property
    def object_share(self) -> float:
        """
        share of learning pixels in product components
        """
    @property
    def threshold(self) -> float:
        """
        distance in sigmas past which an unseen colour is product
        """
    @property
    def typical_area(self) -> float:
        """
        their area-weighted median area, mask pixels
        """

class ComponentNote:
    """
    What the detector did with one connected component (explain on).
    """
    def as_dict(self) -> dict:
        """
        The note as a dict (inspect.json).
        """
    @property
    def area(self) -> float:
        """
        full-resolution px^2
        """
    @property
    def box(self) -> tuple[int, int, int, int]:
        """
        (x, y, w, h), mask pixels
        """
    @property
    def detections(self) -> int: ...
    @property
    def first_detection(self) -> int:
        """
        its first detection in detect()'s output, -1: none
        """
    @property
    def joined(self) -> int:
        """
        grouped: the component it joined, else -1
        """
    @property
    def objects_by_area(self) -> int:
        """
        area / typical object, rounded (0: not tried)
        """
    @property
    def outcome(self) -> str:
        """
        one, kept_whole, split, grouped, crumb, too_small, too_large or cut_by_roi
        """
    @property
    def peaks(self) -> int:
        """
        distance-transform peaks it was cut around
        """
    @property
    def pixels(self) -> int: ...
    @property
    def solidity(self) -> float: ...

class CountParams:
    """
    Counting line settings (see counter.hpp).
    """

    CHOICES: typing.ClassVar[list] = []
    FIELDS: typing.ClassVar[list] = ["line"]
    RANGES: typing.ClassVar[list] = [("line", "in (0, 1]")]
    def __init__(self) -> None: ...
    def validate(self) -> None:
        """
        Raise ParamError naming the first out-of-range field.
        """
    @property
    def line(self) -> float: ...
    @line.setter
    def line(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...

class CropReadParams:
    """
    How a crop is read for the anomaly model (see crop_reader.hpp).
    """

    CHOICES: typing.ClassVar[list] = []
    FIELDS: typing.ClassVar[list] = ["work_size", "area_resize", "figures"]
    RANGES: typing.ClassVar[list] = [("work_size", "in [32, 4096]")]
    area_resize: bool
    figures: bool
    def __init__(self) -> None: ...
    def validate(self) -> None:
        """
        Raise ParamError naming the first out-of-range field.
        """
    @property
    def work_size(self) -> int: ...
    @work_size.setter
    def work_size(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...

class CropReader:
    """
    Finds a crop's object and measures it, for the anomaly model.
    """
    def __init__(self, params: CropReadParams) -> None: ...
    def read(self, crop: numpy.ndarray) -> CropReading:
        """
        Read one BGR crop (uint8, HxWx3, C-contiguous; not copied).
        """

class CropReading:
    """
    What one crop shows: its object's outline and figures (crop_reader.hpp).
    """
    @property
    def content_at(self) -> tuple[int, int]:
        """
        Where the content starts in the crop (x, y).
        """
    @property
    def figures(self) -> typing.Any:
        """
        The 39 figures (float64, CROP_FIGURE_NAMES); None: not asked for, or no object.
        """
    @property
    def object(self) -> typing.Any:
        """
        Otsu's object, holes kept, that the figures measure (uint8 0/255, region's size); None: figures not asked for, or no object.
        """
    @property
    def outline(self) -> typing.Any:
        """
        The whole object, holes filled (uint8 0/255, region's size); None: no object.
        """
    @property
    def pieces(self) -> int:
        """
        The object's sizeable pieces (2: broken in two).
        """
    @property
    def region(self) -> numpy.ndarray:
        """
        The crop's content scaled to work_size (BGR uint8).
        """
    @property
    def region_scale(self) -> float:
        """
        Region pixels per crop pixel.
        """

class Crossing:
    """
    When an object reaches a line downstream of the view (crossing.hpp).
    """
    @property
    def back(self) -> float:
        """
        ... its trailing edge
        """
    @property
    def centre(self) -> float:
        """
        frames after its last frame when its centre reaches the line
        """
    @property
    def front(self) -> float:
        """
        ... its leading edge
        """
    @property
    def known(self) -> bool:
        """
        false: its speed is not known
        """

class DetectParams:
    """
    Connected-component settings (see detector.hpp).
    """

    CHOICES: typing.ClassVar[list] = []
    FIELDS: typing.ClassVar[list] = ["min_area", "max_area", "split_solidity", "split_min_part", "group_gap"]
    RANGES: typing.ClassVar[list] = [
        ("min_area", "in [0, max_area]"),
        ("max_area", "in [min_area, 1e+09]"),
        ("split_solidity", "in [0, 1]"),
        ("split_min_part", "in [0, 1]"),
        ("group_gap", "in [0, 100]"),
    ]
    def __init__(self) -> None: ...
    def validate(self) -> None:
        """
        Raise ParamError naming the first out-of-range field.
        """
    @property
    def group_gap(self) -> float: ...
    @group_gap.setter
    def group_gap(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def max_area(self) -> float: ...
    @max_area.setter
    def max_area(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def min_area(self) -> float: ...
    @min_area.setter
    def min_area(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def split_min_part(self) -> float: ...
    @split_min_part.setter
    def split_min_part(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def split_solidity(self) -> float: ...
    @split_solidity.setter
    def split_solidity(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...

class Detection:
    """
    One object's box and shape figures (types.hpp).
    """
    @property
    def area(self) -> float:
        """
        mask pixel count, full-resolution px^2
        """
    @property
    def box(self) -> tuple[float, float, float, float]:
        """
        (x, y, w, h), full-resolution pixels
        """
    @property
    def centroid(self) -> tuple[float, float]:
        """
        (x, y) of the mask pixels' centroid
        """
    @property
    def circularity(self) -> float:
        """
        4 pi area / perimeter^2, in (0, 1]
        """
    @property
    def solidity(self) -> float:
        """
        area / convex hull area, in (0, 1]
        """

class Detections:
    """
    A frame's detections as columns (N rows).
    """
    def __len__(self) -> int: ...
    @property
    def area(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        (N,) float32, full-resolution px^2
        """
    @property
    def boxes(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        (N, 4) float32: x, y, w, h, full-resolution pixels
        """
    @property
    def centroids(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        (N, 2) float32
        """
    @property
    def circularity(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        (N,) float32
        """
    @property
    def solidity(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        (N,) float32
        """

class Detector:
    """
    Connected components to detections.
    """
    def __init__(self, params: DetectParams) -> None: ...
    def components(self) -> list[ComponentNote]:
        """
        With explain on: a ComponentNote for every component of the last detect(), in label order.
        """
    def detect(
        self,
        mask: numpy.ndarray,
        roi: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [],
        scale: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    ) -> Detections:
        """
        Detections as columns: boxes (N,4 x,y,w,h), centroids, area, solidity, circularity.
        """
    def explain(self, on: bool = True) -> None:
        """
        Keep a note of every component's fate on each detect() (components()).
        """
    @property
    def typical_area(self) -> float:
        """
        The typical object's area (full-resolution px^2) the last detect() used; 0: none yet.
        """

class FinishedObject:
    """
    A confirmed track that ended, with its whole path.
    """
    @property
    def best_box(self) -> tuple[float, float, float, float]:
        """
        (x, y, w, h) of its largest whole box
        """
    @property
    def best_frame(self) -> int: ...
    @property
    def boxes(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        (N, 4) float32: its box on each of them
        """
    @property
    def centre_along(self) -> float:
        """
        its centre along the belt on its last frame, px from the entry edge (crossing.hpp)
        """
    @property
    def end(self) -> str:
        """
        how it ended: exited, lost or stream_end
        """
    @property
    def ever_whole(self) -> bool:
        """
        it was wholly in view on some frame
        """
    @property
    def first_frame(self) -> int: ...
    @property
    def frames(self) -> numpy.typing.NDArray[numpy.int32]:
        """
        (N,) int32: the frames it was seen on
        """
    @property
    def id(self) -> int:
        """
        the object's number
        """
    @property
    def key(self) -> int: ...
    @property
    def last_frame(self) -> int: ...
    @property
    def shape(self) -> Detection:
        """
        its shape figures, from its best detection
        """
    @property
    def speed(self) -> float:
        """
        its speed along the belt when it ended, px per frame (crossing.hpp; 0: unknown)
        """

class FrameTracks:
    """
    The live tracks after one frame, as columns (one row per track).
    """
    @property
    def best_updated(self) -> numpy.typing.NDArray[numpy.bool]:
        """
        (N,) bool: the box is its largest so far
        """
    @property
    def boxes(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        (N, 4) float32: x, y, w, h, full-resolution pixels
        """
    @property
    def confirmed(self) -> numpy.typing.NDArray[numpy.bool]:
        """
        (N,) bool: counted as an object (track.min_hits)
        """
    @property
    def count(self) -> int:
        """
        confirmed objects so far
        """
    @property
    def counted(self) -> int:
        """
        objects counted at the line so far
        """
    @property
    def crossed(self) -> numpy.typing.NDArray[numpy.int32]:
        """
        (K,) int32: ids counted at the line on this frame
        """
    @property
    def detected(self) -> numpy.typing.NDArray[numpy.bool]:
        """
        (N,) bool: matched to a detection on this frame
        """
    @property
    def detection_frame(self) -> bool:
        """
        detection ran on this frame
        """
    @property
    def detections(self) -> Detections:
        """
        this frame's detections (empty between them)
        """
    @property
    def frame_index(self) -> int:
        """
        0-based index of the frame
        """
    @property
    def ids(self) -> numpy.typing.NDArray[numpy.int32]:
        """
        (N,) int32: the number shown for a confirmed track, else -1
        """
    @property
    def keys(self) -> numpy.typing.NDArray[numpy.int32]:
        """
        (N,) int32: a track's internal key, from its first frame
        """
    @property
    def whole(self) -> numpy.typing.NDArray[numpy.bool]:
        """
        (N,) bool: wholly in view
        """

class InputError(ValueError):
    pass

class MaskBuilder:
    """
    Builds object masks; keeps the learnt belt model between frames.
    """
    def __init__(self, params: MaskParams) -> None: ...
    def build(self, frame: numpy.ndarray) -> numpy.typing.NDArray[numpy.uint8]:
        """
        Object mask (uint8, 0 or 255) of a BGR frame.
        """
    def learning_labels(self) -> numpy.ndarray:
        """
        The last learning frame's first segmentation: 0 unused, 1 belt, 2 rim, 3 product.
        """
    def light_gain(self) -> numpy.ndarray:
        """
        The belt model's light gain per pixel (float32; 1 where the light is even).
        """
    def normalised(self) -> numpy.ndarray:
        """
        The last frame with the light divided out (empty while the light is even).
        """
    def object_mask(self) -> numpy.ndarray:
        """
        Pixels of a product colour on the last frame, before shadows and morphology.
        """
    def shadow_mask(self) -> numpy.ndarray:
        """
        Pixels of a shadow colour on the last frame.
        """
    @property
    def belt_stats(self) -> BeltStats:
        """
        The figures the learnt belt model judged by (auto mode; belt_model.hpp).
        """
    @property
    def ready(self) -> bool: ...

class MaskParams:
    """
    Object mask settings (see mask.hpp).
    """

    CHOICES: typing.ClassVar[list] = [
        ("mode", ["auto", "threshold"]),
        ("object_space", ["gray", "hsv", "lab"]),
        ("shadow_space", ["gray", "hsv", "lab"]),
    ]
    FIELDS: typing.ClassVar[list] = [
        "mode",
        "object_space",
        "object_lower",
        "object_upper",
        "shadow_enabled",
        "shadow_space",
        "shadow_lower",
        "shadow_upper",
        "shadow_min_ratio",
        "shadow_max_ratio",
        "shadow_chroma",
        "edges_enabled",
        "canny_low",
        "canny_high",
        "edge_dilate",
        "auto_learn_frames",
        "auto_learn_stride",
        "auto_threshold",
        "auto_min_sigma",
        "blur",
        "kernel_size",
        "open_iterations",
        "erode_iterations",
        "dilate_iterations",
        "close_iterations",
        "fill_holes",
    ]
    RANGES: typing.ClassVar[list] = [
        ("shadow_min_ratio", "in (0, 1)"),
        ("shadow_max_ratio", "in (shadow_min_ratio, 1]"),
        ("shadow_chroma", "in (0, 100]"),
        ("canny_low", "in [0, canny_high]"),
        ("canny_high", "in [canny_low, 1000]"),
        ("edge_dilate", "in [0, 10]"),
        ("auto_learn_frames", "in [1, 1000]"),
        ("auto_learn_stride", "in [1, 1000]"),
        ("auto_threshold", "in (0, 100]"),
        ("auto_min_sigma", "in (0, 100]"),
        ("blur", "odd in [1, 15]"),
        ("kernel_size", "odd in [1, 31]"),
        ("open_iterations", "in [0, 20]"),
        ("erode_iterations", "in [0, 20]"),
        ("dilate_iterations", "in [0, 20]"),
        ("close_iterations", "in [0, 20]"),
    ]
    edges_enabled: bool
    fill_holes: bool
    mode: str
    object_space: str
    shadow_enabled: bool
    shadow_space: str
    def __init__(self) -> None: ...
    def validate(self) -> None:
        """
        Raise ParamError naming the first out-of-range field.
        """
    @property
    def auto_learn_frames(self) -> int: ...
    @auto_learn_frames.setter
    def auto_learn_frames(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def auto_learn_stride(self) -> int: ...
    @auto_learn_stride.setter
    def auto_learn_stride(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def auto_min_sigma(self) -> float: ...
    @auto_min_sigma.setter
    def auto_min_sigma(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def auto_threshold(self) -> float: ...
    @auto_threshold.setter
    def auto_threshold(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def blur(self) -> int: ...
    @blur.setter
    def blur(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def canny_high(self) -> float: ...
    @canny_high.setter
    def canny_high(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def canny_low(self) -> float: ...
    @canny_low.setter
    def canny_low(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def close_iterations(self) -> int: ...
    @close_iterations.setter
    def close_iterations(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def dilate_iterations(self) -> int: ...
    @dilate_iterations.setter
    def dilate_iterations(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def edge_dilate(self) -> int: ...
    @edge_dilate.setter
    def edge_dilate(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def erode_iterations(self) -> int: ...
    @erode_iterations.setter
    def erode_iterations(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def kernel_size(self) -> int: ...
    @kernel_size.setter
    def kernel_size(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def object_lower(self) -> list[float]: ...
    @object_lower.setter
    def object_lower(self, arg1: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None: ...
    @property
    def object_upper(self) -> list[float]: ...
    @object_upper.setter
    def object_upper(self, arg1: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None: ...
    @property
    def open_iterations(self) -> int: ...
    @open_iterations.setter
    def open_iterations(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def shadow_chroma(self) -> float: ...
    @shadow_chroma.setter
    def shadow_chroma(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def shadow_lower(self) -> list[float]: ...
    @shadow_lower.setter
    def shadow_lower(self, arg1: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None: ...
    @property
    def shadow_max_ratio(self) -> float: ...
    @shadow_max_ratio.setter
    def shadow_max_ratio(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def shadow_min_ratio(self) -> float: ...
    @shadow_min_ratio.setter
    def shadow_min_ratio(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def shadow_upper(self) -> list[float]: ...
    @shadow_upper.setter
    def shadow_upper(self, arg1: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None: ...

class ParamError(ValueError):
    pass

class Pipeline:
    """
    The core's per-frame job: downscale, mask, components, tracking.
    """
    def __init__(self, params: PipelineParams) -> None: ...
    def downscaled(self, frame: numpy.ndarray) -> numpy.typing.NDArray[numpy.uint8]:
        """
        The last frame processed (``frame``: that same frame), downscaled by track.downscale as the core does it: a new array, a copy of the core's own downscaled frame when it made one.
        """
    def finish(self) -> StreamEnd:
        """
        End of stream: every live confirmed track becomes finished (take them with take_finished).
        """
    def last_mask(self) -> numpy.typing.NDArray[numpy.uint8]:
        """
        The object mask of the last detection frame (at the downscaled size).
        """
    def process(self, frame: numpy.ndarray) -> FrameTracks:
        """
        Process the next BGR frame (uint8, HxWx3, C-contiguous; not copied). Returns the live tracks.
        """
    def take_finished(self) -> list[FinishedObject]:
        """
        Tracks confirmed and ended since the last call.
        """
    @property
    def belt_stats(self) -> BeltStats:
        """
        The figures the learnt belt model judged by (mask.mode auto; belt_model.hpp).
        """
    @property
    def direction(self) -> str:
        """
        The belt's direction: track.direction, or with 'auto' the direction read from the footage once known ('auto' until then).
        """
    @property
    def downscaled_size(self) -> tuple[int, int]:
        """
        (width, height) of the frames downscaled by track.downscale ((0, 0) before the first frame).
        """
    @property
    def frames_processed(self) -> int: ...

class PipelineParams:
    count: CountParams
    detect: DetectParams
    mask: MaskParams
    track: TrackParams
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class StreamEnd:
    """
    What the end of a stream adds to the counts.
    """
    @property
    def count(self) -> int:
        """
        confirmed objects
        """
    @property
    def counted(self) -> int:
        """
        the line's final count
        """
    @property
    def crossed(self) -> numpy.typing.NDArray[numpy.int32]:
        """
        (K,) int32: ids counted at the line at the stream end
        """

class TrackParams:
    """
    Multi-tracker settings (see tracker.hpp).
    """

    CHOICES: typing.ClassVar[list] = [
        ("kind", ["none", "kcf", "csrt", "mosse", "medianflow", "mil"]),
        ("direction", ["auto", "left_to_right", "right_to_left", "top_to_bottom", "bottom_to_top"]),
    ]
    FIELDS: typing.ClassVar[list] = [
        "kind",
        "downscale",
        "detect_every",
        "entry_strip",
        "direction",
        "max_distance",
        "max_misses",
        "min_hits",
        "grow_ratio",
        "edge_margin",
        "duplicate_iou",
        "parallel",
    ]
    RANGES: typing.ClassVar[list] = [
        ("downscale", "in (0, 1]"),
        ("detect_every", "in [1, 1000]"),
        ("entry_strip", "in (0, 1]"),
        ("max_distance", "in (0, 100000]"),
        ("max_misses", "in [0, 1000]"),
        ("min_hits", "in [1, 1000]"),
        ("grow_ratio", "in [1, 10]"),
        ("edge_margin", "in [0, 100]"),
        ("duplicate_iou", "in (0, 1]"),
    ]
    direction: str
    kind: str
    parallel: bool
    def __init__(self) -> None: ...
    def validate(self) -> None:
        """
        Raise ParamError naming the first out-of-range field.
        """
    @property
    def detect_every(self) -> int: ...
    @detect_every.setter
    def detect_every(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def downscale(self) -> float: ...
    @downscale.setter
    def downscale(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def duplicate_iou(self) -> float: ...
    @duplicate_iou.setter
    def duplicate_iou(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def edge_margin(self) -> float: ...
    @edge_margin.setter
    def edge_margin(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def entry_strip(self) -> float: ...
    @entry_strip.setter
    def entry_strip(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def grow_ratio(self) -> float: ...
    @grow_ratio.setter
    def grow_ratio(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def max_distance(self) -> float: ...
    @max_distance.setter
    def max_distance(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def max_misses(self) -> int: ...
    @max_misses.setter
    def max_misses(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def min_hits(self) -> int: ...
    @min_hits.setter
    def min_hits(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...

def count_line_segment(
    frame_size: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex],
    line: typing.SupportsFloat | typing.SupportsIndex,
    direction: str,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """
    End points ((x0, y0), (x1, y1)) of the counting line across a (width, height) frame, as the counter places it (count.line along the belt from the entry edge, inside the frame).
    """

def downscale(
    frame: numpy.ndarray, r: typing.SupportsFloat | typing.SupportsIndex
) -> numpy.typing.NDArray[numpy.uint8]:
    """
    The BGR frame downscaled by r as the pipeline does it (track.downscale): same size, same pixels.
    """

def format_decimal2(value: typing.SupportsFloat | typing.SupportsIndex) -> str:
    """
    value to two decimals as printf rounds it, trailing zeros and point dropped ('12', '12.5', '-0').
    """

def mot_lines(
    track_id: typing.SupportsInt | typing.SupportsIndex, frames: numpy.ndarray, boxes: numpy.ndarray
) -> bytes:
    """
    One track's lines of tracks.txt (MOTChallenge: frame,id,x,y,w,h,1,-1,-1,-1, frames 1-based, numbers to two decimals without trailing zeros), each ending with a newline: frames (N,) int32 as the core numbers them (0-based), boxes (N, 4) float32 or float64.
    """

def predict_crossing(
    centre: typing.SupportsFloat | typing.SupportsIndex,
    speed: typing.SupportsFloat | typing.SupportsIndex,
    full_box: tuple[
        typing.SupportsFloat | typing.SupportsIndex,
        typing.SupportsFloat | typing.SupportsIndex,
        typing.SupportsFloat | typing.SupportsIndex,
        typing.SupportsFloat | typing.SupportsIndex,
    ],
    direction: str,
    frame_size: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex],
    beyond_exit: typing.SupportsFloat | typing.SupportsIndex,
) -> Crossing:
    """
    When an object that ended with its centre `centre` px along the belt (from the entry edge) moving at `speed` px a frame crosses a line `beyond_exit` px past the exit edge (a reject gate); `full_box` (x, y, w, h, its largest whole box) gives its length. In frames after its last frame.
    """

CROP_FIGURE_NAMES: tuple = (
    "area_share",
    "solidity",
    "circularity",
    "hole_share",
    "defect_max",
    "defect_sum",
    "defect_count",
    "pieces",
    "crack_share",
    "crack_len",
    "crack_count",
    "hull_gap",
    "hole_max",
    "hole_elong",
    "hole_count",
    "axis_ratio",
    "radius_cv",
    "radius_min",
    "radius_max",
    "L_mean",
    "a_mean",
    "b_mean",
    "L_std",
    "a_std",
    "b_std",
    "grad_mean",
    "grad_std",
    "grad_p90",
    "edge_density",
    "dark_share",
    "dark_share_strong",
    "lbp_0",
    "lbp_1",
    "lbp_2",
    "lbp_3",
    "lbp_4",
    "lbp_5",
    "lbp_6",
    "lbp_7",
)
