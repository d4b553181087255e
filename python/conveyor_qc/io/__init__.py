"""Writing results so that nothing seen is lost: atomic files, the append journal of a run in
progress, and the run folder's outputs (tracks, objects, crops, annotated video, summary).

- :mod:`.atomic`   write-then-rename files and folders, fsync, write errors that name the file
- :mod:`.journal`  an append-only journal that survives a kill and is replayed by ``recover``
- :mod:`.outputs`  the run folder: what ``run`` writes and how ``recover`` finishes it
"""
