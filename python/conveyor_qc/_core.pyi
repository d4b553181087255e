"""Type stubs of the compiled core (cpp/python/bindings.cpp)."""

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

class ParamError(ValueError): ...
class InputError(ValueError): ...

class MaskParams:
    FIELDS: ClassVar[tuple[str, ...]]
    mode: str  # "auto" | "threshold"
    object_space: str  # "gray" | "hsv" | "lab"
    object_lower: list[float]
    object_upper: list[float]
    shadow_enabled: bool
    shadow_space: str
    shadow_lower: list[float]
    shadow_upper: list[float]
    shadow_min_ratio: float
    shadow_max_ratio: float
    shadow_chroma: float
    edges_enabled: bool
    canny_low: float
    canny_high: float
    edge_dilate: int
    auto_learn_frames: int
    auto_learn_stride: int
    auto_threshold: float
    auto_min_sigma: float
    blur: int
    kernel_size: int
    open_iterations: int
    erode_iterations: int
    dilate_iterations: int
    close_iterations: int
    fill_holes: bool
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class DetectParams:
    FIELDS: ClassVar[tuple[str, ...]]
    min_area: float
    max_area: float
    split_solidity: float
    split_min_part: float
    group_gap: float
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class TrackParams:
    FIELDS: ClassVar[tuple[str, ...]]
    kind: str  # "none" | "kcf" | "csrt" | "mosse" | "medianflow" | "mil"
    downscale: float
    detect_every: int
    entry_strip: float
    direction: str  # "auto" | "left_to_right" | "right_to_left" | "top_to_bottom" | "bottom_to_top"
    max_distance: float
    max_misses: int
    min_hits: int
    grow_ratio: float
    edge_margin: float
    duplicate_iou: float
    parallel: bool
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class CountParams:
    FIELDS: ClassVar[tuple[str, ...]]
    line: float  # (0, 1] of the frame along the belt from the entry edge; 1.0 = the exit edge
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class PipelineParams:
    mask: MaskParams
    detect: DetectParams
    track: TrackParams
    count: CountParams
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class MaskBuilder:
    def __init__(self, params: MaskParams) -> None: ...
    def build(self, frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]: ...
    @property
    def ready(self) -> bool: ...
    @property
    def belt_stats(self) -> dict[str, Any]:
        """frames_learnt, belt_lab, belt_sigma, threshold, belt_region, candidates, light_range,
        object_share, object_components, typical_area, ambiguous_share, colour (belt_model.hpp)."""
    def object_mask(self) -> npt.NDArray[np.uint8]: ...
    def shadow_mask(self) -> npt.NDArray[np.uint8]: ...
    def light_gain(self) -> npt.NDArray[np.float32]: ...
    def learning_labels(self) -> npt.NDArray[np.uint8]:
        """0 unused, 1 belt, 2 rim, 3 product, 4 fixture (the last learning frame)."""
    def normalised(self) -> npt.NDArray[np.uint8]: ...

class Detector:
    def __init__(self, params: DetectParams) -> None: ...
    def detect(
        self, mask: npt.NDArray[np.uint8], roi: list[int] = ..., scale: float = 1.0
    ) -> dict[str, npt.NDArray[np.float32]]: ...
    def explain(self, on: bool = True) -> None: ...
    def components(self) -> list[dict[str, Any]]:
        """With explain on: each component of the last detect(): box, pixels, area, solidity,
        outcome (one, kept_whole, split, grouped, crumb, too_small, too_large, cut_by_roi),
        first_detection, detections, objects_by_area, peaks, joined."""
    @property
    def typical_area(self) -> float: ...

def downscale(frame: npt.NDArray[np.uint8], r: float) -> npt.NDArray[np.uint8]:
    """The BGR frame downscaled by r as the pipeline does it (track.downscale)."""

def count_line_segment(
    frame_size: tuple[int, int], line: float, direction: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    """End points ((x0, y0), (x1, y1)) of the counting line across a (width, height) frame."""

class Pipeline:
    def __init__(self, params: PipelineParams) -> None: ...
    def process(self, frame: npt.NDArray[np.uint8]) -> dict[str, Any]:
        """Keys: frame_index, detection_frame, ids, keys, boxes, confirmed, whole,
        best_updated, detected, count, crossed (int32 ids counted at the line on
        this frame), counted (line count so far), detections."""
    def take_finished(self) -> list[dict[str, Any]]: ...
    def finish(self) -> dict[str, Any]:
        """Keys: crossed (int32 ids counted at the stream end), counted, count."""
    @property
    def frames_processed(self) -> int: ...
    @property
    def direction(self) -> str:
        """track.direction, or with "auto" the direction read from the footage once known ("auto" until then)."""
    def last_mask(self) -> npt.NDArray[np.uint8]: ...
    @property
    def belt_stats(self) -> dict[str, Any]: ...
