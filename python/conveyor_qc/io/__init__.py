"""Writing so that nothing seen is lost: atomic files and folders, and the append journal.

- :mod:`.atomic`   write-then-rename files and folders, fsync, write errors that name the file
- :mod:`.journal`  an append-only journal that survives a kill and is replayed by ``recover``
- :mod:`.mp4`      an MP4's top-level boxes: a finished video is whole, a second one appended
"""
