"""Measuring and understanding detection and tracking.

- :mod:`.metrics`  ``eval``: object-level pairing with ground truth, MOTA/IDF1/HOTA, anomaly F1
- :mod:`.tune`     ``tune``: search the settings on a clip with ground truth
- :mod:`.inspect`  ``inspect``: pictures of what the detector sees on a frame
- :mod:`.synth`    ``synth``: synthetic clips with exact ground truth
"""
