"""Which object the labelling page asks about next: active learning on a run folder.

The pieces, each usable alone (the page, ``conveyor-qc simulate-labelling`` and the tests compose
them):

1. :func:`run_features` - one row of figures per object of a run folder: the mean, over up to
   ``max_crops`` of its crops, of the 39 figures the embedded model reads
   (:func:`conveyor_qc.anomaly.features.read_crop`, as :func:`conveyor_qc.anomaly.local.view_crop`
   does), cached per run folder in memory.
2. :func:`unusualness` - with no labels (or fewer than ``min_per_class`` of a class): how unlike
   the others each object looks, a one-class score that needs no label.
3. :func:`fit_guesses` - with at least ``min_per_class`` of each class: the embedded model's
   supervised classifier (:class:`conveyor_qc.anomaly.classifier.LocalClassifier`) retrained on the
   labelled objects (milliseconds), each object's guess, and the estimated quality (the
   classifier's own cross-validated F1 on the labels so far).
4. :func:`teaching_order` - what is left, by how much a label would teach the classifier:
   uncertainty (probability near the threshold, 0.5), spread over the feature space so that one
   batch does not ask ten times about the same kind of object.
5. :func:`ask_order` - the order the page asks in: ``active`` (2 or 4 as the labels allow),
   ``passage`` (track id order, as the objects passed) or ``random`` (seeded).

:func:`simulate_labelling` plays a person who answers with the true label in that order and
measures how many labels the model needs to reach a target anomaly F1 (docs/labelling.md, "Asking
the right questions").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conveyor_qc.anomaly.base import read_image
from conveyor_qc.anomaly.classifier import FigureDistance, LocalClassifier, f1_score
from conveyor_qc.anomaly.features import FEATURE_NAMES, read_crop
from conveyor_qc.dataset.label_server import LabelStore

__all__ = [
    "ORDERS",
    "SPREAD",
    "Guesses",
    "RunFeatures",
    "Simulation",
    "ask_order",
    "fit_guesses",
    "inputs",
    "remaining_f1",
    "run_features",
    "simulate_labelling",
    "teaching_order",
    "unusualness",
]

ORDERS = ("active", "passage", "random")
#: Crops read per object (spread evenly over its crops): the figures of one object's crops differ
#: little (same object, same light), and reading is the costly part (~10 ms a crop).
MAX_CROPS = 4
#: Labels of each class the classifier needs before it orders the page (below: unusualness).
MIN_PER_CLASS = 3
#: Neighbours in the unusualness score (the mean distance to the k nearest other objects).
KNN = 5
#: How many of the first questions are spread over the feature space (:func:`teaching_order`): the
#: page retrains after every label, but a person labels faster than that, so the next several
#: questions must not all be about the same kind of object. (Greedy: the first ``b`` picks are the
#: same for any spread >= b, so a simulation retraining every ``b <= SPREAD`` labels asks as the page.)
SPREAD = 10


@dataclass(frozen=True)
class RunFeatures:
    """The figures of a run's objects: ``X[i]`` is object ``track_ids[i]``'s (mean over its crops)."""

    track_ids: np.ndarray  # (N,) int, ascending (the order the objects passed)
    X: np.ndarray  # (N, F) float, FEATURE_NAMES

    def standardised(self) -> np.ndarray:
        """The figures on a common scale: each centred on its median, divided by its spread
        (the interquartile range; the standard deviation where that is 0), so that distances
        weigh every figure alike and a few anomalies do not set the scale."""
        return _standardise(self.X)


_CACHE: dict[tuple, RunFeatures] = {}


def run_features(
    run: str | Path | LabelStore,
    max_crops: int = MAX_CROPS,
    progress: Callable[[int, int], None] | None = None,
) -> RunFeatures:
    """The figures of every object of ``run`` (a `conveyor-qc run` --out folder, or its
    :class:`LabelStore`) that has a crop, read as the embedded model reads them; objects without a
    crop are left out. Cached in memory per run folder (keyed by its objects and crop files, so a
    new run in the same folder is read again). ``progress(objects read, objects)`` is called as the
    crops are read. Raises :class:`~conveyor_qc.dataset.label_server.LabelError` for a folder that
    is no run."""
    store = run if isinstance(run, LabelStore) else LabelStore(run)
    run_dir = store.run_dir
    files: list[tuple[int, list[Path]]] = []
    for tid, obj in store.objects.items():
        if not obj.crops:
            continue
        pick = np.unique(np.linspace(0, len(obj.crops) - 1, min(max_crops, len(obj.crops))).round().astype(int))
        found = [p for p in (store.crop_file(tid, obj.crops[i]) for i in pick) if p is not None]
        if found:
            files.append((tid, found))
    key = (str(Path(run_dir).resolve()), max_crops, tuple((t, tuple(map(str, ps))) for t, ps in files))
    if key not in _CACHE:  # (the check and the fill are not atomic: two threads may both read; same result)
        rows = []
        for done, (_, paths) in enumerate(files):
            if progress is not None:
                progress(done, len(files))
            figures = [read_crop(read_image(p), figures=True)[1] for p in paths]  # as the model's views read them
            rows.append(np.mean([f for f in figures if f is not None], axis=0))
        X = np.array(rows, float).reshape(len(rows), len(FEATURE_NAMES))
        _CACHE.clear()  # one run at a time: the page serves one, a measurement walks through several
        _CACHE[key] = RunFeatures(np.array([t for t, _ in files], int), X)
    return _CACHE[key]


def _standardise(X: np.ndarray) -> np.ndarray:
    q1, med, q3 = np.percentile(X, [25, 50, 75], axis=0)
    spread = q3 - q1
    sd = X.std(axis=0)
    spread = np.where(spread > 1e-9, spread, np.where(sd > 1e-9, sd, 1.0))
    return (X - med) / spread


def unusualness(Z: np.ndarray, method: str = "distance", k: int = KNN) -> np.ndarray:
    """How unlike the others each object looks, with no label, in standardised figures
    (:meth:`RunFeatures.standardised`); higher is more unusual.

    - ``"distance"`` (the default): the embedded model's own third evidence
      (:class:`~conveyor_qc.anomaly.classifier.FigureDistance`, a Mahalanobis distance with a
      shrunk covariance) fitted on every object as if all were normal. Anomalies are rare, so
      they barely move the fit. On a rare-anomaly cookie run (seed 11, the one this was chosen
      on) it ranked the 6 anomalies of 187 objects within the first 16, kNN within the first 80.
    - ``"knn"``: the mean distance to the ``k`` nearest other objects. Better in principle on a
      line of several products (a normal object of a rare kind is near its own kind), worse when
      the anomalies of one kind (stacked cookies) are each other's neighbours.
    """
    n = len(Z)
    if n < 2:
        return np.zeros(n)
    if method == "distance":
        return FigureDistance.fit(Z).distances(Z)
    if method != "knn":
        raise ValueError(f"unknown unusualness {method!r} (distance or knn)")
    d = _distances(Z)
    np.fill_diagonal(d, np.inf)
    k = max(1, min(k, n - 1))
    return np.sort(d, axis=1)[:, :k].mean(axis=1)


def _distances(Z: np.ndarray) -> np.ndarray:
    sq = (Z * Z).sum(axis=1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * Z @ Z.T, 0.0))


@dataclass(frozen=True)
class Guesses:
    """The classifier retrained on the labels so far, and what it says of every object."""

    probability: np.ndarray  # (N,) anomaly score in [0, 1]; >= 0.5 is a guess of anomaly
    quality: float | None  # cross-validated anomaly F1 on the labels so far (None: too few to tell)
    labelled: int  # labels it was trained on

    @property
    def labels(self) -> list[str]:
        return ["anomaly" if p >= 0.5 else "normal" for p in self.probability]


def inputs(features: RunFeatures) -> np.ndarray:
    """What the classifier reads of each object: its 39 figures and the logarithm of its
    unusualness (a label-free evidence, as the embedded model adds its figures' distance)."""
    Z = features.standardised()
    return np.column_stack([features.X, np.log(unusualness(Z) + 1e-6)])


def fit_guesses(X: np.ndarray, labels: dict[int, int], min_per_class: int = MIN_PER_CLASS) -> Guesses | None:
    """The supervised classifier trained on the labelled rows of ``X`` (``labels``: row -> 1 for
    anomaly, 0 for normal) and its guess for every row; None with fewer than ``min_per_class``
    labels of either class. ``quality`` is the classifier's 5-fold (fewer with fewer labels of a
    class) cross-validated F1 at the threshold it chose on the same folds: somewhat optimistic,
    and None with under 2 of a class."""
    rows = np.fromiter(labels.keys(), int, len(labels))
    y = np.fromiter(labels.values(), int, len(labels))
    if min(int(y.sum()), int((y == 0).sum())) < max(min_per_class, 1):
        return None
    clf = LocalClassifier.fit(X[rows], y)
    cv = clf.params.get("cv_f1")
    return Guesses(clf.scores(X), None if cv is None else float(cv), len(rows))


def teaching_order(probability: np.ndarray, Z: np.ndarray, candidates: np.ndarray, spread: int = SPREAD) -> np.ndarray:
    """The ``candidates`` (row numbers) by how much a label would teach the classifier.

    The first ``spread`` are picked greedily: the most uncertain (``1 - |2p - 1|``, 1 at the
    threshold) first, then each next one's uncertainty weighed by how far it is from those already
    picked (``min(1, distance / r)``, ``r`` the median distance of an object to its 5th nearest
    neighbour: within one neighbourhood of a picked object, a label teaches little more). The
    rest follow by uncertainty alone (the page retrains before it reaches them)."""
    candidates = np.asarray(candidates, int)
    if len(candidates) == 0:
        return candidates
    u = 1.0 - np.abs(2.0 * probability[candidates] - 1.0)
    by_u = candidates[np.argsort(-u, kind="stable")]
    first = min(spread, len(candidates))
    if first <= 1:
        return by_u
    Zc = Z[candidates]
    r = float(np.median(unusualness(Zc, "knn"))) or 1.0
    nearest = np.full(len(candidates), np.inf)
    picked: list[int] = []
    for _ in range(first):
        value = u * np.minimum(1.0, nearest / r)
        value[picked] = -1.0
        i = int(np.argmax(value))
        picked.append(i)
        nearest = np.minimum(nearest, np.linalg.norm(Zc - Zc[i], axis=1))
    chosen = candidates[picked]
    rest = by_u[~np.isin(by_u, chosen)]
    return np.concatenate([chosen, rest])


def ask_order(
    features: RunFeatures,
    labels: dict[int, str],
    order: str = "active",
    *,
    seed: int = 0,
    spread: int = SPREAD,
    min_per_class: int = MIN_PER_CLASS,
) -> tuple[list[int], Guesses | None]:
    """The unlabelled objects' track ids in the order to ask about them, and the classifier's
    guesses (None until ``min_per_class`` labels of each class, or for another order than
    ``active``). ``labels``: track id -> "normal" | "anomaly" (others, and ids not in
    ``features``, are ignored). ``spread``: how many of the first questions are spread over the
    feature space (:func:`teaching_order`). ``seed``: the ``random`` order's."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r} (one of {', '.join(ORDERS)})")
    row_of = {int(t): i for i, t in enumerate(features.track_ids)}
    known = {row_of[t]: int(v == "anomaly") for t, v in labels.items() if t in row_of and v in ("normal", "anomaly")}
    left = np.array([i for i in range(len(row_of)) if i not in known], int)
    guesses = None
    if order == "passage":
        rows = left
    elif order == "random":
        rows = np.random.default_rng(seed).permutation(left)
    else:
        guesses = fit_guesses(inputs(features), known, min_per_class)
        Z = features.standardised()
        rows = _active_rows(guesses, Z, unusualness(Z), left, spread)
    return [int(features.track_ids[i]) for i in rows], guesses


def _active_rows(
    guesses: Guesses | None, Z: np.ndarray, unusual: np.ndarray, left: np.ndarray, spread: int
) -> np.ndarray:
    if guesses is None:  # too few labels to learn from: the most unusual first
        return left[np.argsort(-unusual[left], kind="stable")]
    return teaching_order(guesses.probability, Z, left, spread)


# --- the measurement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Simulation:
    order: str
    target_f1: float
    labels_to_target: int | None  # labels given when the F1 first reached the target (None: never)
    curve: list[tuple[int, float]]  # (labels given, anomaly F1 on the objects not yet labelled)
    objects: int  # objects with a true label (the ones asked about)
    anomalies: int
    # anomalies not yet labelled when the target was reached: 0 means it was reached by finding
    # every anomaly (nothing left to find), not by a model that tells them (None: never reached)
    anomalies_left_at_target: int | None = None

    def to_json(self) -> dict:
        return {
            "order": self.order,
            "target_f1": self.target_f1,
            "labels_to_target": self.labels_to_target,
            "objects": self.objects,
            "anomalies": self.anomalies,
            "anomalies_left_at_target": self.anomalies_left_at_target,
            "curve": [[n, round(f, 4)] for n, f in self.curve],
        }


def remaining_f1(truth: np.ndarray, guess: np.ndarray) -> float:
    """Anomaly F1 of the guesses on the objects not yet labelled. With no anomaly left, 1.0 if the
    model flags none of them (nothing left to find and no false alarm), else 0.0."""
    if not truth.any():
        return 0.0 if guess.any() else 1.0
    return f1_score(truth.astype(int), guess.astype(bool))


def simulate_labelling(
    features: RunFeatures,
    truth: dict[int, str],
    order: str = "active",
    *,
    target_f1: float = 0.9,
    seed: int = 0,
    batch: int = 1,
    min_per_class: int = MIN_PER_CLASS,
    progress: Callable[[int, int], None] | None = None,
) -> Simulation:
    """A person who labels the objects named in ``truth`` (track id -> label; objects it does not
    name are never asked about, as if skipped) in ``order``, ``batch`` at a time: after each batch
    the classifier is retrained on every label so far, as the page does (for every order: only the
    asking differs), and scored on the objects not yet labelled (:func:`remaining_f1`; 0.0 while
    it has fewer than ``min_per_class`` labels of a class, as it guesses nothing). The run stops
    when every object is labelled."""
    keep = np.isin(features.track_ids, [t for t, v in truth.items() if v in ("normal", "anomaly")])
    feats = RunFeatures(features.track_ids[keep], features.X[keep])
    ids = [int(t) for t in feats.track_ids]
    y = np.array([truth[t] == "anomaly" for t in ids], bool)
    X = inputs(feats)
    Z = feats.standardised()
    unusual = unusualness(Z)
    row_of = {t: i for i, t in enumerate(ids)}
    given: dict[int, str] = {}
    curve: list[tuple[int, float]] = []
    reached = left_then = None
    spread = max(batch, SPREAD)  # the page's spread (the first `batch` picks are the same for any spread >= batch)
    queue = ask_order(feats, given, order, seed=seed, spread=spread, min_per_class=min_per_class)[0]
    while True:
        known = {row_of[t]: int(v == "anomaly") for t, v in given.items()}
        g = fit_guesses(X, known, min_per_class)
        left = np.array([i for i in range(len(ids)) if i not in known], int)
        if len(left):
            f1 = 0.0 if g is None else remaining_f1(y[left], g.probability[left] >= 0.5)
            curve.append((len(given), f1))
            if reached is None and f1 >= target_f1:
                reached, left_then = len(given), int(y[left].sum())
        if progress is not None:
            progress(len(given), len(ids))
        if not len(left):
            break
        if order == "active":  # asked as the page would, from the model just retrained
            queue = [ids[i] for i in _active_rows(g, Z, unusual, left, spread)]
        for t in queue[:batch]:
            given[t] = truth[t]
        queue = queue[batch:]
    return Simulation(order, target_f1, reached, curve, len(ids), int(y.sum()), left_then)
