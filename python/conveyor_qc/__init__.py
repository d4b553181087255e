"""conveyor-qc: visual quality control for products on conveyor belts.

Finds every product in a video without machine learning, follows each one
across the frame with a stable number, and cuts out each object for labelling
and anomaly detection. The work per frame happens in a C++ core (``_core``).
"""

from conveyor_qc.config import Config, ConfigError
from conveyor_qc.run.pipeline import FrameUpdate, ObjectEvent, Pipeline, Tracks
from conveyor_qc.run.video import VideoError, VideoReader
from conveyor_qc.version import __version__

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
