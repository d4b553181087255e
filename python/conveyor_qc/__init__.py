"""conveyor-qc: visual quality control for products on conveyor belts.

Finds every product in a video without machine learning, follows each one
across the frame with a stable number, and cuts out each object for labelling
and anomaly detection. The work per frame happens in a C++ core (``_core``).
"""

__version__ = "0.1.0"

from .config import Config, ConfigError  # noqa: E402
from .pipeline import FrameUpdate, ObjectEvent, Pipeline, Tracks  # noqa: E402
from .video import VideoError, VideoReader  # noqa: E402

__all__ = [
    "Config",
    "ConfigError",
    "FrameUpdate",
    "ObjectEvent",
    "Pipeline",
    "Tracks",
    "VideoError",
    "VideoReader",
    "__version__",
]
