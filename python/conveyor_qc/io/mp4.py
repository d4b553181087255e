"""The top-level boxes of an MP4 (ISO base media: MP4, MOV, 3GP) file, read without decoding it.

Two questions are answered from them alone: whether a video that an encoder finished is whole
(``recover`` renames it into place only then), and whether a second MP4 was appended to a file
(``cat a.mp4 b.mp4``: FFmpeg reads the first one's index and never sees the second).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["appended_at", "top_level_boxes", "whole_mp4"]

#: Reading stops after this many boxes (a fragmented MP4 has two a fragment): None after it.
MAX_BOXES = 200_000


def _walk(path: str | Path) -> tuple[list[tuple[int, bytes, int]], bool]:
    """The top-level boxes read from the start, and whether they add up to the file's size
    exactly (False also when it stops at bytes that are not a box)."""
    boxes: list[tuple[int, bytes, int]] = []
    with contextlib.suppress(OSError), open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0
        while offset < size and len(boxes) < MAX_BOXES:
            f.seek(offset)
            header = f.read(16)
            if len(header) < 8:
                break
            length, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if not all(32 < c < 127 for c in kind):
                break  # not a box type (zeros left by a power cut, or not an MP4 at all)
            if not boxes and kind != b"ftyp":
                break
            if length == 1:
                if len(header) < 16:
                    break
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:
                length = size - offset  # the box runs to the end of the file
            if length < 8 or offset + length > size:
                break
            boxes.append((offset, kind, length))
            offset += length
        else:
            return boxes, bool(boxes) and offset == size
    return boxes, False


def top_level_boxes(path: str | Path) -> list[tuple[int, bytes, int]] | None:
    """``(offset, type, length)`` of each top-level box, in order. None when the file is not an
    ISO base media file (its first box is not ``ftyp``), cannot be read, or its boxes do not
    add up to its size exactly (cut short, or bytes that are not boxes)."""
    boxes, whole = _walk(path)
    return boxes if whole else None


def whole_mp4(path: str | Path) -> bool:
    """The file is an MP4 whose boxes add up to its size and that holds its index (``moov``)
    and its media (``mdat``): what an encoder leaves once it has finished the file."""
    boxes = top_level_boxes(path)
    kinds = {kind for _, kind, _ in boxes or ()}
    return b"moov" in kinds and b"mdat" in kinds


def appended_at(path: str | Path) -> int | None:
    """The byte where a second MP4 starts, appended to the first: a second ``ftyp`` or ``moov``
    box at the top level (the boxes read up to where they stop adding up). None for any other file."""
    seen: set[bytes] = set()
    for offset, kind, _ in _walk(path)[0]:
        if kind in (b"ftyp", b"moov"):
            if kind in seen:
                return offset
            seen.add(kind)
    return None
