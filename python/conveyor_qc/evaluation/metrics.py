"""How well a run found, followed and judged the objects of a clip with ground truth.

Three levels, all from MOTChallenge text files (``conveyor-qc synth`` writes the
ground truth, ``conveyor-qc run`` the tracks):

- **object level** (ours, :func:`object_metrics`): every ground-truth object
  and every track are paired one to one; a pair needs IoU >= ``min_iou`` (0.5)
  on at least ``min_share`` (50%) of the frames where both have a box.
  Precision, recall, F1, and the lists of missed objects, ghost tracks, joined
  objects (one track over several objects), split objects (one object under
  several tracks, one after the other) and duplicate tracks (several tracks on
  one object at the same time).
- **MOT metrics** (:func:`mot_metrics`): MOTA, MOTP, IDF1, HOTA, ID switches,
  fragmentations, computed by TrackEval's own metric classes on the data dict
  its MotChallenge2DBox dataset would build (same preprocessing), so they are
  TrackEval's figures by construction.
- **anomaly verdicts** (with ``labels`` and ``objects``): over the paired
  objects, anomaly as the positive class.

:func:`evaluate` does all three and returns one flat dict (what
``conveyor-qc eval --json`` prints). docs/evaluation.md says what each number
means.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import math
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from conveyor_qc.errors import ConveyorQCError

__all__ = [
    "EvalError",
    "ObjectReport",
    "anomaly_metrics",
    "evaluate",
    "format_report",
    "mot_metrics",
    "object_metrics",
    "read_labels",
    "read_mot",
    "read_objects",
]

EPS = np.finfo("float").eps
# MOT17's distractor classes (column 8 of the ground truth): a tracker box matched
# to one of them is removed instead of counted as a false positive.
DISTRACTOR_CLASSES = (2, 7, 8, 12)  # person_on_vehicle, static_person, distractor, reflection
TRACKEVAL_INSTALL = "pip install --no-deps 'trackeval>=1.3'"


class EvalError(ConveyorQCError, ValueError):
    """A ground-truth, tracks, labels or objects file (or array) cannot be used; the message says where."""


# --------------------------------------------------------------------------- reading


def read_mot(path: str | Path) -> np.ndarray:
    """MOTChallenge rows as an ``(N, C)`` float array, ``C >= 6`` columns as in the file:
    ``frame, id, x, y, w, h[, conf, class, visibility, ...]`` (frames 1-based).

    Blank lines are skipped; rows shorter than the longest are padded with NaN
    (read as the column's default). Raises :class:`EvalError` naming the line for
    a value that is not a number, fewer than 6 values, a frame that is not an
    integer >= 1, an id that is not an integer, a negative width or height, or
    two boxes of one id on one frame. A missing file raises FileNotFoundError.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    rows: list[list[float]] = []
    lines: list[int] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.replace(" ", "").split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise EvalError(f"{path}:{n}: not a row of numbers: {line[:80]!r}") from None
        if len(values) < 6:
            raise EvalError(f"{path}:{n}: {len(values)} values, expected at least 6 (frame,id,x,y,w,h,...)")
        if not all(math.isfinite(v) for v in values[:6]):
            raise EvalError(f"{path}:{n}: frame, id and box must be finite numbers")
        frame, oid, _, _, w, h = values[:6]
        if frame != int(frame) or frame < 1:
            raise EvalError(f"{path}:{n}: frame {parts[0]} is not an integer >= 1 (frames are 1-based)")
        if oid != int(oid):
            raise EvalError(f"{path}:{n}: id {parts[1]} is not an integer")
        if w < 0 or h < 0:
            raise EvalError(f"{path}:{n}: negative width or height")
        rows.append(values)
        lines.append(n)
    width = max((len(r) for r in rows), default=10)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    dup = _duplicate_rows(out)
    if dup is not None:
        i, j = dup
        raise EvalError(
            f"{path}:{lines[j]}: id {int(out[j, 1])} has a second box on frame {int(out[j, 0])} "
            f"(first on line {lines[i]})"
        )
    return out


def _duplicate_rows(rows: np.ndarray) -> tuple[int, int] | None:
    """Indices (first, second) of two rows with the same frame and id, or None."""
    if len(rows) < 2:
        return None
    keys = np.stack([rows[:, 0], rows[:, 1]], axis=1)
    order = np.lexsort((np.arange(len(rows)), keys[:, 1], keys[:, 0]))
    k = keys[order]
    same = np.flatnonzero(np.all(k[1:] == k[:-1], axis=1))
    if len(same) == 0:
        return None
    return int(order[same[0]]), int(order[same[0] + 1])


def _as_rows(data, what: str) -> np.ndarray:
    """A path or an array of MOT rows -> checked float array."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.exists():
            raise EvalError(f"{what} not found: {path}")
        if path.is_dir():
            raise EvalError(f"{what} is a folder, not a file: {path}")
        return read_mot(path)
    rows = np.asarray(data, dtype=float)
    if rows.size == 0:
        return np.zeros((0, 10))
    if rows.ndim != 2 or rows.shape[1] < 6:
        raise EvalError(f"{what}: expected an (N, >=6) array of MOT rows, got shape {rows.shape}")
    if not np.all(np.isfinite(rows[:, :6])):
        raise EvalError(f"{what}: frame, id and box must be finite numbers")
    if (
        np.any(rows[:, 0] < 1)
        or np.any(rows[:, 0] != np.round(rows[:, 0]))
        or np.any(rows[:, 1] != np.round(rows[:, 1]))
    ):
        raise EvalError(f"{what}: frames must be integers >= 1 and ids integers")
    dup = _duplicate_rows(rows)
    if dup is not None:
        j = dup[1]
        raise EvalError(f"{what}: id {int(rows[j, 1])} has two boxes on frame {int(rows[j, 0])} (row {j + 1})")
    return rows


def _read_csv(path: str | Path, columns: tuple[str, ...]) -> list[tuple[int, dict]]:
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise EvalError(f"{path}:1: header lacks column(s) {', '.join(missing)} (expected {','.join(columns)})")
        return [(reader.line_num, row) for row in reader]


def _read_id_labels(path: str | Path, id_column: str, allowed: tuple[str, ...]) -> dict[int, str]:
    """{id: label} from a CSV with an integer id column and a label column."""
    out: dict[int, str] = {}
    for n, row in _read_csv(path, (id_column, "label")):
        try:
            key = int(row[id_column])
        except (TypeError, ValueError):
            raise EvalError(f"{path}:{n}: {id_column} {row[id_column]!r} is not an integer") from None
        label = (row["label"] or "").strip()
        if label not in allowed:
            raise EvalError(f"{path}:{n}: label {label!r} is not {', '.join(allowed[:-1])} or {allowed[-1]}")
        out[key] = label
    return out


def read_labels(path: str | Path) -> dict[int, str]:
    """``labels.csv`` as written by ``synth`` (``id,label,kind``) -> {ground-truth id: "normal" | "anomaly"}."""
    return _read_id_labels(path, "id", ("normal", "anomaly"))


def read_objects(path: str | Path) -> dict[int, str]:
    """``objects.csv`` as written by ``run`` -> {track id: "normal" | "anomaly" | "unknown"}."""
    return _read_id_labels(path, "track_id", ("normal", "anomaly", "unknown"))


# --------------------------------------------------------------------------- ground-truth columns


def _column(rows: np.ndarray, i: int, default: float) -> np.ndarray:
    if rows.shape[1] <= i:
        return np.full(len(rows), default)
    c = rows[:, i].copy()
    c[~np.isfinite(c)] = default
    return c


def _gt_roles(gt: np.ndarray, min_visibility: float) -> tuple[np.ndarray, np.ndarray]:
    """(evaluated, distractor) masks over the ground-truth rows.

    Evaluated: ``conf`` (column 7) != 0, class (column 8) 1 (or absent, or not a
    MOT17 class number, e.g. -1), visibility (column 9, absent or negative = 1)
    >= min_visibility. Distractor (a tracker box matched to it is dropped rather
    than counted as a false positive): a MOT17 distractor class, or a row that
    would be evaluated but for its visibility. Rows with conf 0 are neither, as
    in TrackEval.
    """
    conf = _column(gt, 6, 1.0)
    cls = _column(gt, 7, 1.0)
    cls[(cls < 1) | (cls > 13)] = 1.0
    vis = _column(gt, 8, 1.0)
    vis[vis < 0] = 1.0
    pedestrian = (conf != 0) & (cls == 1)
    visible = vis >= min_visibility - 1e-12
    evaluated = pedestrian & visible
    distractor = np.isin(cls, DISTRACTOR_CLASSES) | (pedestrian & ~visible)
    return evaluated, distractor


# --------------------------------------------------------------------------- boxes


def _iou_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Element-wise IoU and intersection-over-area-of-``a`` of xywh boxes (TrackEval's formula)."""
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.maximum(np.minimum(ax1, bx1) - np.maximum(a[:, 0], b[:, 0]), 0)
    ih = np.maximum(np.minimum(ay1, by1) - np.maximum(a[:, 1], b[:, 1]), 0)
    inter = iw * ih
    area_a = a[:, 2] * a[:, 3]
    area_b = b[:, 2] * b[:, 3]
    union = area_a + area_b - inter
    bad = (area_a <= EPS) | (area_b <= EPS) | (union <= EPS)
    iou = np.where(bad, 0.0, inter / np.where(union <= EPS, 1.0, union))
    ioa = np.where(area_a > EPS, inter / np.where(area_a > EPS, area_a, 1.0), 0.0)
    return iou, ioa


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b`` (xywh), exactly as TrackEval computes it
    (a box of no area overlaps nothing). The one IoU of the Python side: eval and tune judge by it;
    the core's tracker has its own, for its duplicate tracks (tracker.cpp)."""
    a0, b0 = a[:, :2], b[:, :2]
    a1, b1 = a0 + a[:, 2:4], b0 + b[:, 2:4]
    mn = np.minimum(a1[:, None, :], b1[None, :, :])
    mx = np.maximum(a0[:, None, :], b0[None, :, :])
    inter = np.maximum(mn[..., 0] - mx[..., 0], 0) * np.maximum(mn[..., 1] - mx[..., 1], 0)
    area_a = (a1[:, 0] - a0[:, 0]) * (a1[:, 1] - a0[:, 1])
    area_b = (b1[:, 0] - b0[:, 0]) * (b1[:, 1] - b0[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    inter[area_a <= EPS, :] = 0
    inter[:, area_b <= EPS] = 0
    inter[union <= EPS] = 0
    union[union <= EPS] = 1
    return inter / union


def _same_frame_pairs(f_a: np.ndarray, f_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with f_a[i] == f_b[j]; f_b must be sorted."""
    lo = np.searchsorted(f_b, f_a, "left")
    hi = np.searchsorted(f_b, f_a, "right")
    cnt = hi - lo
    total = int(cnt.sum())
    i = np.repeat(np.arange(len(f_a)), cnt)
    start = np.repeat(np.cumsum(cnt) - cnt, cnt)
    j = np.repeat(lo, cnt) + (np.arange(total) - start)
    return i, j


# --------------------------------------------------------------------------- object level


@dataclass
class ObjectReport:
    """The object-level comparison of one run with its ground truth.

    ``objects``: judged ground-truth objects (at least one box with visibility
    >= ``judge_visibility``); ``tracks``: tracks (the run's count);
    ``pairs``: (gt id, track id), one to one; ``precision`` = paired tracks /
    tracks, ``recall`` = paired judged objects / judged objects, ``f1`` their
    harmonic mean. ``missed``: judged objects paired with no track. ``ghosts``:
    unpaired tracks that follow no object (eligible for none, in no list below).
    ``joined``: (track id, [gt ids]) for a track whose box covers (intersection
    over the object's box >= ``min_iou``) two or more objects, each on at least
    ``min_share`` of the frames they share. ``split``: (gt id, [track ids]) for
    an object that several tracks follow one after the other. ``duplicates``:
    (gt id, [track ids]) for tracks that follow one object at the same time.
    """

    objects: int
    tracks: int
    gt_objects: int  # every ground-truth object, judged or not
    pairs: list[tuple[int, int]]
    precision: float
    recall: float
    f1: float
    missed: list[int] = field(default_factory=list)
    ghosts: list[int] = field(default_factory=list)
    joined: list[tuple[int, list[int]]] = field(default_factory=list)
    split: list[tuple[int, list[int]]] = field(default_factory=list)
    duplicates: list[tuple[int, list[int]]] = field(default_factory=list)
    #: Tracks paired with an object that is never judged (one that only peeks in at the clip's
    #: start or end, or is cut by a side of the view to less than ``judge_visibility``):
    #: counting it is no error, and not counting it neither.
    peeking: int = 0

    @property
    def paired(self) -> int:
        return len(self.pairs)

    @property
    def counted(self) -> int:
        """The run's count of the judged objects: its tracks, less those on peeking objects."""
        return self.tracks - self.peeking

    @property
    def count_error(self) -> float:
        """|counted - objects| / objects (docs/tuning.md)."""
        return abs(self.counted - self.objects) / max(self.objects, 1)

    @property
    def track_of(self) -> dict[int, int]:
        """{gt id: its paired track id}."""
        return dict(self.pairs)

    @property
    def object_of(self) -> dict[int, int]:
        """{track id: its paired gt id}."""
        return {t: g for g, t in self.pairs}

    @property
    def exact(self) -> bool:
        """Every judged object paired, and no ghost, joined, split or duplicate."""
        return not (self.missed or self.ghosts or self.joined or self.split or self.duplicates)

    def to_dict(self) -> dict:
        return asdict(self)


def _check_fraction(name: str, value: float, zero_ok: bool) -> None:
    ok = (0.0 <= value <= 1.0) if zero_ok else (0.0 < value <= 1.0)
    if not (isinstance(value, (int, float)) and ok):
        raise EvalError(f"{name} must be in {'[0, 1]' if zero_ok else '(0, 1]'}, got {value!r}")


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


#: An object is judged (required) once this share of it is in view on some frame: a row of
#: products cut by a side of the view for their whole passage (the camera sees less than the
#: belt's width) counts when at least 40% of each is seen (issue 16).
JUDGE_VISIBILITY = 0.4


def object_metrics(
    gt, tracks, *, min_iou: float = 0.5, min_share: float = 0.5, judge_visibility: float = JUDGE_VISIBILITY
) -> ObjectReport:
    """Pair ground-truth objects and tracks one to one and report the counting errors.

    ``gt`` and ``tracks``: paths or arrays of MOT rows (:func:`read_mot`).
    Ground-truth rows with conf 0 or a class other than 1 are not objects.
    A (object, track) pair is *eligible* when, over the frames where both have a
    box, IoU >= ``min_iou`` on at least ``min_share`` of them; the pairing is
    the one-to-one assignment (Hungarian) over eligible pairs with the most
    such good frames. An object is *judged* (counted in recall, listed when
    missed) when one of its boxes has visibility >= ``judge_visibility``; an
    object that only ever peeks into the frame may still be paired, so the
    track that follows it is no ghost.
    """
    _check_fraction("min_iou", min_iou, False)
    _check_fraction("min_share", min_share, False)
    _check_fraction("judge_visibility", judge_visibility, True)
    gt = _as_rows(gt, "ground truth")
    tracks = _as_rows(tracks, "tracks")
    evaluated, _ = _gt_roles(gt, 0.0)
    vis_all = _column(gt, 8, 1.0)
    vis_all[vis_all < 0] = 1.0
    gt, vis = gt[evaluated], vis_all[evaluated]

    g_ids, g_idx = np.unique(gt[:, 1].astype(np.int64), return_inverse=True)
    t_ids, t_idx = np.unique(tracks[:, 1].astype(np.int64), return_inverse=True)
    G, T = len(g_ids), len(t_ids)
    judged = np.zeros(G, bool)
    if G:
        np.logical_or.at(judged, g_idx, vis >= judge_visibility - 1e-12)

    # Every (gt box, track box) on the same frame, and its IoU / cover.
    t_order = np.argsort(tracks[:, 0], kind="stable")
    i, j = _same_frame_pairs(gt[:, 0], tracks[t_order, 0])
    j = t_order[j]
    iou, ioa = _iou_pairs(gt[i, 2:6], tracks[j, 2:6])
    key = g_idx[i] * max(T, 1) + t_idx[j]
    size = G * T
    shared = np.bincount(key, minlength=size).reshape(G, T)
    good_pair = iou >= min_iou - 1e-12
    good = np.bincount(key, weights=good_pair, minlength=size).reshape(G, T)
    covered = np.bincount(key, weights=ioa >= min_iou - 1e-12, minlength=size).reshape(G, T)
    eligible = (good > 0) & (good >= min_share * shared - 1e-9)
    covers = (covered > 0) & (covered >= min_share * shared - 1e-9)

    pairs: list[tuple[int, int]] = []
    if G and T and eligible.any():
        rows, cols = linear_sum_assignment(np.where(eligible, -good, 0.0))
        ok = eligible[rows, cols]
        pairs = sorted((int(g_ids[r]), int(t_ids[c])) for r, c in zip(rows[ok], cols[ok]))
    paired_g = {g for g, _ in pairs}
    paired_t = {t for _, t in pairs}

    # Objects with several eligible tracks: simultaneous (duplicates) or one after the other (split).
    split: list[tuple[int, list[int]]] = []
    duplicates: list[tuple[int, list[int]]] = []
    explained: set[int] = set()
    for g in np.flatnonzero(eligible.sum(axis=1) >= 2):
        cand = np.flatnonzero(eligible[g])
        sel = (g_idx[i] == g) & good_pair
        frames = {int(c): set(gt[i[sel & (t_idx[j] == c)], 0].astype(int).tolist()) for c in cand}
        parent = {int(c): int(c) for c in cand}

        def root(c: int, parent: dict[int, int] = parent) -> int:
            while parent[c] != c:
                c = parent[c]
            return c

        for a_pos, a in enumerate(cand):
            for b in cand[a_pos + 1 :]:
                fa, fb = frames[int(a)], frames[int(b)]
                if len(fa & fb) >= min_share * min(len(fa), len(fb)) - 1e-9:
                    parent[root(int(b))] = root(int(a))
        groups: dict[int, list[int]] = {}
        for c in cand:
            groups.setdefault(root(int(c)), []).append(int(t_ids[c]))
        gid = int(g_ids[g])
        if len(groups) >= 2:
            split.append((gid, sorted(int(t_ids[c]) for c in cand)))
        dup = sorted(t for members in groups.values() if len(members) >= 2 for t in members)
        if dup:
            duplicates.append((gid, dup))
        explained.update(int(t_ids[c]) for c in cand)

    joined = [
        (int(t_ids[c]), sorted(int(g_ids[g]) for g in np.flatnonzero(covers[:, c])))
        for c in np.flatnonzero(covers.sum(axis=0) >= 2)
    ]
    explained.update(t for t, _ in joined)
    ghosts = sorted(int(t) for t in t_ids if int(t) not in paired_t and int(t) not in explained)
    missed = sorted(int(g) for g, jd in zip(g_ids, judged) if jd and int(g) not in paired_g)

    n_judged = int(judged.sum())
    precision = len(pairs) / T if T else 0.0
    recall = sum(1 for g, jd in zip(g_ids, judged) if jd and int(g) in paired_g) / n_judged if n_judged else 0.0
    judged_ids = {int(g) for g, jd in zip(g_ids, judged) if jd}
    return ObjectReport(
        objects=n_judged,
        tracks=T,
        gt_objects=G,
        pairs=pairs,
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        missed=missed,
        ghosts=ghosts,
        joined=joined,
        split=split,
        duplicates=duplicates,
        peeking=sum(1 for g, _ in pairs if g not in judged_ids),
    )


# --------------------------------------------------------------------------- MOT metrics (TrackEval)


_trackeval_lock = threading.Lock()


def _trackeval_metrics():
    """TrackEval's metric classes, imported quietly (its package prints at import).

    Only the import is quietened, once, under a lock: sys.stdout is the process's, and `tune`
    scores candidates on two threads, whose redirections, each restoring what it found, left
    sys.stdout on a buffer for good (`conveyor-qc tune` printed no result). Scoring itself prints
    nothing (PRINT_CONFIG off)."""
    with _trackeval_lock:
        return _import_trackeval()


@functools.cache
def _import_trackeval():
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from trackeval.metrics import CLEAR, HOTA, Identity
    except ImportError as exc:
        raise EvalError(
            f"TrackEval is needed for the MOT metrics ({exc}); install it with: "
            f"{TRACKEVAL_INSTALL} (see docs/evaluation.md)"
        ) from None
    return CLEAR, HOTA, Identity


def trackeval_data(gt, tracks, *, min_visibility: float = 0.0, num_frames: int | None = None) -> dict:
    """The data dict TrackEval's metrics take, built as MotChallenge2DBox.get_preprocessed_seq_data does.

    Per frame: IoU of every ground-truth box (all rows) with every tracker box;
    tracker boxes matched (Hungarian on IoU >= 0.5) to a distractor row are
    dropped; then only the evaluated ground-truth rows are kept (see
    :func:`_gt_roles`); ids are relabelled 0..n-1 in ascending order.
    ``num_frames`` defaults to the last frame of either file.
    """
    _check_fraction("min_visibility", min_visibility, True)
    gt = _as_rows(gt, "ground truth")
    tracks = _as_rows(tracks, "tracks")
    evaluated, distractor = _gt_roles(gt, min_visibility)
    last = int(max(gt[:, 0].max(initial=0), tracks[:, 0].max(initial=0)))
    T = last if num_frames is None else int(num_frames)
    if last > T:
        raise EvalError(f"num_frames {T} is before the last frame with a box ({last})")

    g_order = np.argsort(gt[:, 0], kind="stable")
    t_order = np.argsort(tracks[:, 0], kind="stable")
    g_bounds = np.searchsorted(gt[g_order, 0], np.arange(1, T + 2))
    t_bounds = np.searchsorted(tracks[t_order, 0], np.arange(1, T + 2))

    gt_ids, tr_ids, sims = [], [], []
    for t in range(T):
        gi = g_order[g_bounds[t] : g_bounds[t + 1]]
        ti = t_order[t_bounds[t] : t_bounds[t + 1]]
        sim = iou_matrix(gt[gi, 2:6], tracks[ti, 2:6])
        if len(gi) and len(ti) and distractor[gi].any():
            m = sim.copy()
            m[m < 0.5 - EPS] = 0
            r, c = linear_sum_assignment(-m)
            ok = m[r, c] > 0 + EPS
            r, c = r[ok], c[ok]
            drop = c[distractor[gi][r]]
            ti = np.delete(ti, drop)
            sim = np.delete(sim, drop, axis=1)
        keep = evaluated[gi]
        gt_ids.append(gt[gi[keep], 1].astype(int))
        tr_ids.append(tracks[ti, 1].astype(int))
        sims.append(sim[keep])

    def relabel(ids_per_t):
        uniq = np.unique(np.concatenate(ids_per_t)) if ids_per_t else np.zeros(0, int)
        return [np.searchsorted(uniq, x).astype(int) for x in ids_per_t], len(uniq)

    gt_ids, n_gt = relabel(gt_ids)
    tr_ids, n_tr = relabel(tr_ids)
    return {
        "num_timesteps": T,
        "num_gt_ids": n_gt,
        "num_tracker_ids": n_tr,
        "num_gt_dets": int(sum(len(x) for x in gt_ids)),
        "num_tracker_dets": int(sum(len(x) for x in tr_ids)),
        "gt_ids": gt_ids,
        "tracker_ids": tr_ids,
        "similarity_scores": sims,
        "seq": "conveyor-qc",
    }


def mota(gt, tracks, *, min_visibility: float = 0.0, num_frames: int | None = None) -> float:
    """MOTA alone, as ``mot_metrics`` reports it (TrackEval's CLEAR on the same data), for
    callers in a loop such as ``tune``: IDF1 and HOTA cost about 5x more."""
    CLEAR = _trackeval_metrics()[0]
    data = trackeval_data(gt, tracks, min_visibility=min_visibility, num_frames=num_frames)
    return float(CLEAR({"PRINT_CONFIG": False}).eval_sequence(data)["MOTA"])


def mot_metrics(gt, tracks, *, min_visibility: float = 0.0, num_frames: int | None = None) -> dict:
    """MOTA, MOTP, IDF1, HOTA and their parts, by TrackEval's CLEAR, Identity and HOTA classes.

    Returns a flat dict: ``mota, motp, idf1, idp, idr, hota, deta, assa, loca,
    id_switches, fragmentations, true_positives, false_positives,
    false_negatives, mostly_tracked, partly_tracked, mostly_lost, gt_dets,
    tracker_dets, gt_ids, tracker_ids, frames``. HOTA, DetA, AssA and LocA are
    the mean over TrackEval's 19 IoU thresholds 0.05..0.95, as TrackEval reports them.
    Ground-truth boxes with visibility below ``min_visibility`` are ignored
    (with the tracker box matched to them), like MOT17's distractors.
    """
    CLEAR, HOTA, Identity = _trackeval_metrics()
    data = trackeval_data(gt, tracks, min_visibility=min_visibility, num_frames=num_frames)
    clear = CLEAR({"PRINT_CONFIG": False}).eval_sequence(data)
    ident = Identity({"PRINT_CONFIG": False}).eval_sequence(data)
    hota = HOTA().eval_sequence(data)
    return {
        "mota": float(clear["MOTA"]),
        "motp": float(clear["MOTP"]),
        "idf1": float(ident["IDF1"]),
        "idp": float(ident["IDP"]),
        "idr": float(ident["IDR"]),
        "hota": float(np.mean(hota["HOTA"])),
        "deta": float(np.mean(hota["DetA"])),
        "assa": float(np.mean(hota["AssA"])),
        "loca": float(np.mean(hota["LocA"])),
        "id_switches": int(clear["IDSW"]),
        "fragmentations": int(clear["Frag"]),
        "true_positives": int(clear["CLR_TP"]),
        "false_positives": int(clear["CLR_FP"]),
        "false_negatives": int(clear["CLR_FN"]),
        "mostly_tracked": int(clear["MT"]),
        "partly_tracked": int(clear["PT"]),
        "mostly_lost": int(clear["ML"]),
        "gt_dets": int(data["num_gt_dets"]),
        "tracker_dets": int(data["num_tracker_dets"]),
        "gt_ids": int(data["num_gt_ids"]),
        "tracker_ids": int(data["num_tracker_ids"]),
        "frames": int(data["num_timesteps"]),
    }


# --------------------------------------------------------------------------- anomaly verdicts


def anomaly_metrics(pairs, labels, objects) -> dict:
    """Anomaly precision, recall, F1 over the paired objects (anomaly = positive).

    ``pairs``: (gt id, track id); ``labels``: {gt id: label} or a labels.csv
    path; ``objects``: {track id: label} or an objects.csv path. Pairs whose
    track is labelled ``unknown`` (or has no row) are left out and counted in
    ``anomaly_unknown``. The three ratios are None when no pair is left.
    """
    if not isinstance(labels, dict):
        labels = read_labels(labels)
    if not isinstance(objects, dict):
        objects = read_objects(objects)
    tp = fp = fn = tn = unknown = 0
    for g, t in pairs:
        truth = labels.get(g)
        if truth is None:
            raise EvalError(f"labels: no label for ground-truth object {g}")
        verdict = objects.get(t, "unknown")
        if verdict == "unknown":
            unknown += 1
            continue
        pos, pred = truth == "anomaly", verdict == "anomaly"
        tp += pos and pred
        fp += pred and not pos
        fn += pos and not pred
        tn += not pos and not pred
    known = tp + fp + fn + tn
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {
        "anomaly_precision": p if known else None,
        "anomaly_recall": r if known else None,
        "anomaly_f1": _f1(p, r) if known else None,
        "anomaly_tp": tp,
        "anomaly_fp": fp,
        "anomaly_fn": fn,
        "anomaly_tn": tn,
        "anomaly_judged": known,
        "anomaly_unknown": unknown,
    }


# --------------------------------------------------------------------------- all together


def evaluate(
    gt,
    tracks,
    labels=None,
    objects=None,
    *,
    min_iou: float = 0.5,
    min_share: float = 0.5,
    judge_visibility: float = JUDGE_VISIBILITY,
    min_visibility: float = 0.0,
    mot: bool = True,
) -> dict:
    """Everything ``conveyor-qc eval`` reports, as one flat dict.

    ``gt``, ``tracks``: paths or arrays of MOT rows; ``labels``, ``objects``:
    paths (labels.csv, objects.csv) or dicts, both or neither. Keys: the
    object level (``precision, recall, f1, objects, tracks, paired,
    gt_objects, missed, ghosts, joined, split, duplicates`` and their
    ``*_count``), the MOT metrics of :func:`mot_metrics` (unless ``mot`` is
    False), the ``anomaly_*`` figures with labels, and the settings used.
    """
    if (labels is None) != (objects is None):
        raise EvalError(
            "labels and objects go together: give both (labels.csv of the ground truth, "
            "objects.csv of the run) or neither"
        )
    gt = _as_rows(gt, "ground truth")
    tracks = _as_rows(tracks, "tracks")
    rep = object_metrics(gt, tracks, min_iou=min_iou, min_share=min_share, judge_visibility=judge_visibility)
    out: dict = {
        "precision": rep.precision,
        "recall": rep.recall,
        "f1": rep.f1,
        "objects": rep.objects,
        "tracks": rep.tracks,
        "paired": rep.paired,
        "gt_objects": rep.gt_objects,
        "missed_count": len(rep.missed),
        "ghost_count": len(rep.ghosts),
        "joined_count": len(rep.joined),
        "split_count": len(rep.split),
        "duplicate_count": len(rep.duplicates),
        "missed": rep.missed,
        "ghosts": rep.ghosts,
        "joined": [{"track": t, "objects": g} for t, g in rep.joined],
        "split": [{"object": g, "tracks": t} for g, t in rep.split],
        "duplicates": [{"object": g, "tracks": t} for g, t in rep.duplicates],
        # which track followed which object (what `label --from-truth` labels by)
        "pairs": [{"object": g, "track": t} for g, t in sorted(rep.pairs)],
    }
    if mot:
        out.update(mot_metrics(gt, tracks, min_visibility=min_visibility))
    if labels is not None:
        out.update(anomaly_metrics(rep.pairs, labels, objects))
    out.update(
        {
            "min_iou": min_iou,
            "min_share": min_share,
            "judge_visibility": judge_visibility,
            "min_visibility": min_visibility,
        }
    )
    return out


def format_report(res: dict) -> str:
    """The few readable lines ``conveyor-qc eval`` prints."""

    def ids(xs) -> str:
        return ", ".join(map(str, xs)) if xs else "none"

    def frac(v) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    lines = [
        f"objects     {res['objects']} true, {res['tracks']} tracks, {res['paired']} paired: "
        f"precision {frac(res['precision'])}, recall {frac(res['recall'])}, F1 {frac(res['f1'])}",
        f"missed      {ids(res['missed'])}",
        f"ghosts      {ids(res['ghosts'])}",
        "joined      "
        + ("; ".join(f"track {j['track']} over objects {ids(j['objects'])}" for j in res["joined"]) or "none"),
        "split       "
        + ("; ".join(f"object {s['object']} under tracks {ids(s['tracks'])}" for s in res["split"]) or "none"),
        "duplicates  "
        + ("; ".join(f"object {d['object']} under tracks {ids(d['tracks'])}" for d in res["duplicates"]) or "none"),
        "pairs       "
        + (", ".join(f"{p['object']}->{p['track']}" for p in res["pairs"]) or "none")
        + " (object->track)",
    ]
    if "mota" in res:
        lines.append(
            f"MOT         MOTA {res['mota']:.3f}  MOTP {res['motp']:.3f}  IDF1 {res['idf1']:.3f}  "
            f"HOTA {res['hota']:.3f}  ID switches {res['id_switches']}  fragmentations {res['fragmentations']}  "
            f"(TP {res['true_positives']}, FP {res['false_positives']}, FN {res['false_negatives']})"
        )
    if "anomaly_f1" in res:
        lines.append(
            f"anomaly     precision {frac(res['anomaly_precision'])}, recall {frac(res['anomaly_recall'])}, "
            f"F1 {frac(res['anomaly_f1'])} (tp {res['anomaly_tp']}, fp {res['anomaly_fp']}, "
            f"fn {res['anomaly_fn']}, tn {res['anomaly_tn']}; {res['anomaly_unknown']} paired objects "
            f"labelled unknown, left out)"
        )
    return "\n".join(lines)
