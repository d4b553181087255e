"""A run over a video: read frames, find and follow objects in the C++ core, judge them, write.

- :mod:`.video`       the reader: files, cameras, streams; its own thread; reconnects
- :mod:`.pipeline`    the core's pipeline as Python objects: tracks, finished objects, crops
- :mod:`.segments`    the pipeline over a long video in segments, continuous across them
- :mod:`.counts`      counts at the line over time
- :mod:`.mask_watch`  whether the belt model holds, and what to tell the user when it does not
- :mod:`.judging`     the anomaly model off the loop over frames
- :mod:`.encoder`     the annotated video's encoder
- :mod:`.outputs`     the run folder: what ``run`` writes and how ``recover`` finishes it
- :mod:`.provenance`  what a run used (source, model), for its summary
- :mod:`.job`         ``run``: all of the above for one video
- :mod:`.batch`       ``batch``: many videos on a Dask cluster
"""
