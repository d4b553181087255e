"""Anomaly models: train from a manifest into a folder, load a folder, evaluate on a manifest.

``load_model`` and ``train_model`` dispatch on the backend: ``local`` is the embedded model
(:mod:`conveyor_qc.anomaly.local`, every number in ``model.json`` itself), ``lookout`` is Amazon
Lookout for Vision (:mod:`conveyor_qc.anomaly.lookout`), ``onnx`` a graph trained elsewhere
(:mod:`conveyor_qc.anomaly.onnx_model`: loaded, not trained here). The interface every backend offers, its
verdicts and the folder's format are in :mod:`conveyor_qc.anomaly.base`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conveyor_qc.anomaly.base import (
    META_NAME,
    AnomalyModel,
    ModelError,
    read_image,
    read_meta,
    write_meta,
)
from conveyor_qc.anomaly.classifier import f1_score, group_folds
from conveyor_qc.anomaly.local import LocalFit, LocalModel, train_local, views_of
from conveyor_qc.anomaly.lookout import LookoutModel, train_lookout
from conveyor_qc.anomaly.onnx_model import OnnxModel
from conveyor_qc.dataset.manifest import read_manifest

__all__ = ["cross_validate", "evaluate_model", "load_model", "train_model"]


def load_model(model_dir: str | Path) -> AnomalyModel:
    meta = read_meta(model_dir)
    backend = meta.get("backend")
    if backend == "local":
        return LocalModel.load(Path(model_dir), meta)
    if backend == "lookout":
        return LookoutModel.load(Path(model_dir), meta)
    if backend == "onnx":
        return OnnxModel.load(Path(model_dir), meta)
    raise ModelError(f"{Path(model_dir) / META_NAME}: unknown backend {backend!r}")


def train_model(
    manifest: str | Path,
    out_dir: str | Path,
    backend: str = "local",
    test_manifest: str | Path | None = None,
    **options,
) -> dict:
    """Train from a Ground Truth classification manifest into ``out_dir`` (model.json).
    Returns the model's metadata; with ``test_manifest``, its ``"test"`` holds evaluate_model's figures."""
    out = Path(out_dir)
    if backend == "lookout":
        return train_lookout(manifest, out, test_manifest=test_manifest, **options)
    if backend == "onnx":
        raise ModelError(
            "an ONNX model is trained elsewhere: make its folder with `conveyor-qc import-onnx MODEL.onnx --out "
            f"MODEL_DIR --output-kind ... --calibrate {manifest}` (the threshold set on this manifest; docs/anomaly.md)"
        )
    if backend != "local":
        raise ModelError(f"unknown backend {backend!r} (local, lookout or onnx)")
    unknown = sorted(set(options) - {"one_class"})
    if unknown:
        raise ModelError(f"the local backend takes no option {', '.join(unknown)}")
    entries = read_manifest(manifest)
    meta = train_local(entries, out, one_class=options.get("one_class"))
    write_meta(out, meta)
    if test_manifest is not None:
        meta["test"] = evaluate_model(out, test_manifest)
    return meta


def evaluate_model(model_dir: str | Path, manifest: str | Path, model: AnomalyModel | None = None) -> dict:
    """Image-level precision, recall, F1 (anomaly is the positive class) and the confusion counts."""
    entries = read_manifest(manifest)
    for e in entries:
        if e.path is None:
            raise ModelError(f"{manifest}:{e.line}: {e.source_ref}: evaluate-model reads local images, not s3:// ones")
    paths = [e.path for e in entries if e.path is not None]  # every one, checked above
    own = model is None
    judge = load_model(model_dir) if model is None else model
    try:
        verdicts = judge.predict([read_image(p) for p in paths])
    finally:
        if own:
            judge.close()
    tp = sum(1 for e, v in zip(entries, verdicts) if e.label == "anomaly" and v.label == "anomaly")
    fp = sum(1 for e, v in zip(entries, verdicts) if e.label == "normal" and v.label == "anomaly")
    fn = sum(1 for e, v in zip(entries, verdicts) if e.label == "anomaly" and v.label == "normal")
    tn = sum(1 for e, v in zip(entries, verdicts) if e.label == "normal" and v.label == "normal")
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"images": len(entries), "precision": p, "recall": r, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def cross_validate(manifest: str | Path, folds: int = 5, repeats: int = 10, one_class: bool = False) -> dict:
    """Cross-validated image-level F1 of the local model on a labelled manifest, split by object
    (``conveyor-qc-object``, else by image: each photo in exactly one test fold, stratified by
    class), repeated over ``repeats`` shuffles. Returns the mean, min and max F1 of the anomaly
    class and each repeat's pooled confusion counts."""
    entries = read_manifest(manifest)
    for e in entries:
        if e.path is None:
            raise ModelError(
                f"{manifest}:{e.line}: {e.source_ref}: cross-validation reads local images, not s3:// ones"
            )
    views = views_of([read_image(e.path) for e in entries if e.path is not None])
    y = np.array([e.label == "anomaly" for e in entries], int)
    _, groups = np.unique(np.array([e.object_id or str(e.path) for e in entries]), return_inverse=True)
    runs = []
    for r in range(repeats):
        fold = group_folds(y, groups, folds, seed=r)
        pred = np.zeros(len(y), bool)
        for f in range(folds):
            tr = fold != f
            if one_class:
                tr &= y == 0
            train = np.flatnonzero(tr)
            fit = LocalFit.fit([views[i] for i in train], y[train], groups[train], one_class=one_class)
            test = np.flatnonzero(fold == f)
            pred[test] = fit.scores([views[i] for i in test]) >= 0.5
        runs.append(
            {
                "f1": f1_score(y, pred),
                "tp": int((pred & (y > 0)).sum()),
                "fp": int((pred & (y == 0)).sum()),
                "fn": int((~pred & (y > 0)).sum()),
                "tn": int((~pred & (y == 0)).sum()),
            }
        )
    f1s = [r["f1"] for r in runs]
    return {
        "images": len(y),
        "folds": folds,
        "repeats": repeats,
        "f1_mean": float(np.mean(f1s)),
        "f1_min": float(np.min(f1s)),
        "f1_max": float(np.max(f1s)),
        "runs": runs,
    }
