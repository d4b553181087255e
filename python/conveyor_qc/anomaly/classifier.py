"""The embedded model's classifiers: a logistic regression (labelled normal and anomalous crops)
or a distance to the normal class (normal crops only), on standardised figures.

The logistic regression is L2-regularised, fitted by Newton's method in NumPy. Its saved form is a
handful of numbers in ``model.json`` (the means, scales, weights, intercept), which any later
release can read without a library version to match. The regularisation strength and the decision
threshold are chosen by 5-fold cross-validation on the training images (the F1 of the anomaly
class); the intercept is then shifted so that the threshold is at score 0.5 (score = the shifted
probability), so a score >= 0.5 means anomaly for every mode.

Format-1 one-class models (still read): the squared Mahalanobis distance of the standardised figures
to the normal mean, with a shrunk covariance; ``score = d2 / (d2 + q)``. The same distance, not
squared, is :class:`FigureDistance`, the format-2 model's third evidence.
"""

from __future__ import annotations

import math

import numpy as np

from conveyor_qc.anomaly.base import ModelError

__all__ = ["FigureDistance", "LocalClassifier", "f1_score", "fit_logistic", "group_folds"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (intercept not penalised), Newton's method.
    Classes are weighted to equal total weight. Returns (weights, intercept)."""
    n, f = X.shape
    pos = max(int(y.sum()), 1)
    neg = max(n - pos, 1)
    sw = np.where(y > 0, n / (2.0 * pos), n / (2.0 * neg))
    A = np.hstack([X, np.ones((n, 1))])
    w = np.zeros(f + 1)
    reg = np.full(f + 1, l2)
    reg[-1] = 0.0
    for _ in range(iterations):
        p = _sigmoid(A @ w)
        g = A.T @ (sw * (p - y)) + reg * w
        hdiag = sw * p * (1 - p)
        H = (A * hdiag[:, None]).T @ A + np.diag(reg) + 1e-9 * np.eye(f + 1)
        step = np.linalg.solve(H, g)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w[:-1], float(w[-1])


def f1_score(y: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(pred & (y > 0)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y > 0)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def group_folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Group-aware, class-stratified fold numbers: every group in exactly one fold."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), int)
    ug = np.unique(groups)
    glabel = {g: int(y[groups == g].max()) for g in ug}
    for cls in (0, 1):
        gs = [g for g in ug if glabel[g] == cls]
        rng.shuffle(gs)
        for i, g in enumerate(gs):
            fold[groups == g] = i % k
    return fold


L2_GRID = (1.0, 3.0, 10.0, 30.0)
#: How many features, best first, the cross-validation may choose from. All of them: letting it
#: pick fewer was measured to hurt on the real photos (F1 0.90 against 0.93, docs/anomaly.md): on
#: tens of images the choice itself overfits, and the L2 penalty already tames the weak features.
#: (None: every figure given.)
TOP_K_GRID = (None,)


def _separation(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How well each feature alone tells the classes apart: |AUC - 0.5| (rank statistic)."""
    pos, neg = Z[y > 0], Z[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return np.zeros(Z.shape[1])
    ranks = np.argsort(np.argsort(np.vstack([pos, neg]), axis=0, kind="stable"), axis=0) + 1.0
    auc = (ranks[: len(pos)].sum(axis=0) - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    return np.abs(auc - 0.5)


class LocalClassifier:
    """Standardisation + logistic regression (supervised) or Mahalanobis distance (one-class)."""

    def __init__(self, params: dict):
        self.mode = params["mode"]
        self.mean = np.asarray(params["mean"], float)
        self.scale = np.asarray(params["scale"], float)
        self.params = params

    # ---- training
    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> LocalClassifier:
        """The supervised classifier (one-class models of format 2 are the bank's evidence alone)."""
        X = np.asarray(X, float)
        y = np.asarray(y, int)
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        if (y == 0).sum() == 0 or y.sum() == 0:
            raise ModelError("the classifier needs normal and anomalous images")
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-9] = 1.0
        Z = (X - mean) / scale
        # Choose how many features (ranked by how well each alone separates the classes), the L2
        # strength and the threshold from out-of-fold probabilities: with tens of images, a few
        # strong shape figures generalise better than all of them at once.
        k = int(min(5, len(np.unique(groups[y == 1])), len(np.unique(groups[y == 0]))))
        order = np.argsort(-_separation(Z, y), kind="stable")
        best = (-1.0, 0, 1.0, 0.5)  # f1, n_features, l2, threshold
        if k >= 2:
            fold = group_folds(y, groups, k)
            for nf in sorted({Z.shape[1] if n is None else min(n, Z.shape[1]) for n in TOP_K_GRID}):
                for l2 in L2_GRID:
                    oof = np.zeros(len(y))
                    for f in range(k):
                        tr, te = fold != f, fold == f
                        if y[tr].min() == y[tr].max():
                            continue
                        # the ranking is redone inside each fold, so the held-out images never pick features
                        sub = np.argsort(-_separation(Z[tr], y[tr]), kind="stable")[:nf]
                        w, b = fit_logistic(Z[tr][:, sub], y[tr], l2)
                        oof[te] = _sigmoid(Z[te][:, sub] @ w + b)
                    for t in np.linspace(0.2, 0.8, 25):
                        f1 = f1_score(y, oof >= t)
                        # the better F1, then fewer features, stronger regularisation, a threshold nearer 0.5
                        key = (round(f1, 6), -nf, l2, -abs(t - 0.5))
                        if key > (round(best[0], 6), -best[1], best[2], -abs(best[3] - 0.5)):
                            best = (f1, nf, l2, float(t))
        else:
            best = (-1.0, Z.shape[1], 1.0, 0.5)
        cv_f1, nf, l2, t = best
        sub = order[:nf]
        w_sub, b = fit_logistic(Z[:, sub], y, l2)
        w = np.zeros(Z.shape[1])
        w[sub] = w_sub
        b -= math.log(t / (1 - t))  # the chosen threshold becomes score 0.5
        return cls(
            {
                "mode": "supervised",
                "mean": mean.tolist(),
                "scale": scale.tolist(),
                "weights": w.tolist(),
                "intercept": b,
                "l2": l2,
                "features_used": int(nf),
                "cv_threshold": t,
                "cv_f1": cv_f1 if k >= 2 else None,
            }
        )

    # ---- scoring
    def scores(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores in [0, 1]; >= 0.5 is anomaly."""
        X = np.asarray(X, float)
        if X.ndim != 2 or X.shape[1] != len(self.mean):
            raise ValueError(f"expected {len(self.mean)} features per crop")
        Z = (X - self.mean) / self.scale
        if self.mode == "supervised":
            return _sigmoid(Z @ np.asarray(self.params["weights"]) + self.params["intercept"])
        d2 = _mahalanobis2(Z - np.asarray(self.params["center"]), np.asarray(self.params["precision"]))
        q = self.params["d2_threshold"]
        return d2 / (d2 + q)

    def to_dict(self) -> dict:
        return dict(self.params)


#: How far a covariance is shrunk towards a multiple of the identity (few normal images, many
#: figures: the raw covariance is singular).
_OC_SHRINK = 0.3


def _shrunk_precision(Z: np.ndarray, shrink: float | None = None) -> np.ndarray:
    shrink = _OC_SHRINK if shrink is None else shrink
    cov = np.cov(Z, rowvar=False) if len(Z) > 1 else np.eye(Z.shape[1])
    cov = np.atleast_2d(cov)
    cov = (1 - shrink) * cov + shrink * np.eye(cov.shape[0]) * max(float(np.trace(cov)) / cov.shape[0], 1e-6)
    return np.linalg.inv(cov)


def _mahalanobis2(D: np.ndarray, prec: np.ndarray) -> np.ndarray:
    return np.einsum("ij,jk,ik->i", D, prec, D)


class FigureDistance:
    """How far a crop's figures are from the normal training crops': the Mahalanobis distance of
    the standardised figures to their mean, with the covariance shrunk as in one-class mode."""

    def __init__(self, params: dict):
        self.mean = np.asarray(params["mean"], float)
        self.scale = np.asarray(params["scale"], float)
        self.center = np.asarray(params["center"], float)
        self.precision = np.asarray(params["precision"], float)

    @classmethod
    def fit(cls, X: np.ndarray) -> FigureDistance:
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-9] = 1.0
        Z = (X - mean) / scale
        return cls({"mean": mean, "scale": scale, "center": Z.mean(axis=0), "precision": _shrunk_precision(Z)})

    def distances(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, float) - self.mean) / self.scale
        return np.sqrt(np.maximum(_mahalanobis2(Z - self.center, self.precision), 0.0))

    @classmethod
    def left_out(cls, X: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Each row's distance to the others, its own group left out of the fit."""
        out = np.empty(len(X))
        for g in np.unique(groups):
            rows = groups == g
            out[rows] = cls.fit(X[~rows]).distances(X[rows])
        return out

    def to_dict(self) -> dict:
        return {k: v.tolist() for k, v in vars(self).items()}
