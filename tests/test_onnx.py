"""Bring your own model: the ONNX backend (anomaly/onnx_model.py) on small graphs built here with
onnx's helper (no download), one per output kind, with known verdicts; the folder's errors."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx builds the test graphs (make installs it)")
pytest.importorskip("onnxruntime", reason='the ONNX backend needs onnxruntime: pip install "conveyor-qc[onnx]"')

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from conveyor_qc.anomaly.base import ModelError, read_image, write_meta  # noqa: E402
from conveyor_qc.anomaly.heatmap import overlay  # noqa: E402
from conveyor_qc.anomaly.model import evaluate_model, load_model, train_model  # noqa: E402
from conveyor_qc.anomaly.onnx_model import (  # noqa: E402
    MAX_BATCH,
    OnnxModel,
    best_threshold,
)
from conveyor_qc.cli import main  # noqa: E402
from conveyor_qc.dataset.manifest import read_manifest, write_manifest  # noqa: E402

S = 96  # the test graphs' input size (fixed in the graph unless said otherwise)
THRESHOLD = 0.45  # raw darkness of the middle from which a crop is an anomaly


# --- graphs ---------------------------------------------------------------------------------------


def _const(name: str, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _save(path: Path, nodes, inputs, outputs, inits) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="conveyor-qc tests")
    model.ir_version = 8  # read by every onnxruntime from 1.17
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _image_input(size=(S, S), batch="N", layout="NCHW", channels=3, name="x"):
    shape = [batch, channels, *size] if layout == "NCHW" else [batch, *size, channels]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _darkness_nodes(layout="NCHW"):
    """grey = the channels' mean, dark = 1 - grey (N, 1, H, W)."""
    c_axis = 1 if layout == "NCHW" else 3
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["grey"], axes=[c_axis], keepdims=1),
        helper.make_node("Sub", ["one", "grey"], ["dark"]),
    ]
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["dark"], ["dark_nchw"], perm=[0, 3, 1, 2]))
    return nodes, [_const("one", 1.0)], "dark" if layout == "NCHW" else "dark_nchw"


def _middle_nodes(src: str, out: str):
    """The mean darkness of the image's middle (the middle half of each side): (N,)."""
    nodes = [
        helper.make_node("Slice", [src, "mid_start", "mid_end", "mid_axes"], ["mid"]),
        helper.make_node("ReduceMean", ["mid"], [out], axes=[1, 2, 3], keepdims=0),
    ]
    inits = [
        _const("mid_start", [S // 4, S // 4], np.int64),
        _const("mid_end", [3 * S // 4, 3 * S // 4], np.int64),
        _const("mid_axes", [2, 3], np.int64),
    ]
    return nodes, inits


def score_graph(path: Path, layout="NCHW", batch="N", channels=3) -> Path:
    """(1) An anomaly score per image: the mean darkness of its middle (like test_judging's DarkShare)."""
    dark_nodes, inits, dark = _darkness_nodes(layout)
    mid_nodes, mid_inits = _middle_nodes(dark, "score")
    out = helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch])
    return _save(
        path,
        dark_nodes + mid_nodes,
        [_image_input(batch=batch, layout=layout, channels=channels)],
        [out],
        inits + mid_inits,
    )


GAIN = 12.0  # the probability graph's logit per unit of darkness


def probability_graph(path: Path) -> Path:
    """(2) Two classes' logits (normal, anomaly) = -+GAIN x (darkness - THRESHOLD), softmaxed: (N, 2)."""
    dark_nodes, inits, dark = _darkness_nodes()
    mid_nodes, mid_inits = _middle_nodes(dark, "d")
    nodes = dark_nodes + [
        *mid_nodes,
        helper.make_node("Unsqueeze", ["d", "axis1"], ["d1"]),
        helper.make_node("Sub", ["d1", "centre"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["z"]),
        helper.make_node("Neg", ["z"], ["nz"]),
        helper.make_node("Concat", ["nz", "z"], ["logits"], axis=1),
        helper.make_node("Softmax", ["logits"], ["prob"], axis=1),
    ]
    inits += mid_inits + [_const("axis1", [1], np.int64), _const("centre", THRESHOLD), _const("gain", GAIN)]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2]),
        helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 2]),
    ]
    return _save(path, nodes, [_image_input()], outputs, inits)


def map_graph(path: Path, size=("h", "w"), pool=4) -> Path:
    """(3) A score map per image: the per-pixel darkness, averaged over pool x pool cells, (N, 1, H/pool, W/pool)."""
    dark_nodes, inits, dark = _darkness_nodes()
    nodes = [
        *dark_nodes,
        helper.make_node("AveragePool", [dark], ["map"], kernel_shape=[pool, pool], strides=[pool, pool]),
    ]
    out = helper.make_tensor_value_info("map", TensorProto.FLOAT, ["N", 1, "mh", "mw"])
    return _save(path, nodes, [_image_input(size=size)], [out], inits)


def conv_net(path: Path, size: int = 224, stages=((32, 1), (64, 1), (128, 1), (256, 1)), seed: int = 0) -> Path:
    """A plain conv net with random weights (He init) and a one-channel map head: each stage halves
    the resolution with a 3 x 3 stride-2 conv, then more 3 x 3 convs; for measuring what a
    realistic graph costs a crop (docs/anomaly.md). The default ~0.18 GMAC a 224 x 224 image;
    ``RESNET18_STAGES`` ~1.7, a ResNet-18's convolutions."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev, c = "x", 3
    for s, (width, convs) in enumerate(stages):
        for k in range(convs):
            name = f"s{s}c{k}"
            w = rng.normal(0.0, math.sqrt(2.0 / (9 * c)), (width, c, 3, 3)).astype(np.float32)
            inits += [numpy_helper.from_array(w, name + "_w"), _const(name + "_b", np.zeros(width))]
            stride = 2 if k == 0 else 1
            nodes.append(
                helper.make_node(
                    "Conv", [prev, name + "_w", name + "_b"], [name], pads=[1, 1, 1, 1], strides=[stride, stride]
                )
            )
            nodes.append(helper.make_node("Relu", [name], [name + "_r"]))
            prev, c = name + "_r", width
    head = rng.normal(0.0, math.sqrt(1.0 / c), (1, c, 1, 1)).astype(np.float32)
    inits += [numpy_helper.from_array(head, "head_w"), _const("head_b", np.zeros(1))]
    nodes.append(helper.make_node("Conv", [prev, "head_w", "head_b"], ["map"]))
    out = helper.make_tensor_value_info("map", TensorProto.FLOAT, ["N", 1, "mh", "mw"])
    return _save(path, nodes, [_image_input(size=(size, size))], [out], inits)


#: A ResNet-18's convolutions without its shortcuts (stem at stride 2, then 4 stages of 4 convs).
RESNET18_STAGES = ((64, 1), (64, 4), (128, 4), (256, 4), (512, 4))


def folder(path: Path, graph_maker, meta: dict, **kw) -> Path:
    """A model folder: the graph as model.onnx and model.json from ``meta``."""
    graph_maker(path / "model.onnx", **kw)
    write_meta(path, {"format": "conveyor-qc-model", "version": 2, "backend": "onnx", **meta})
    return path


# --- images and the NumPy reference ------------------------------------------------------------------


def disc(dark: bool, size=(384, 384), seed: int = 0) -> np.ndarray:
    """A synthetic crop: a disc on a light belt, dark (an anomaly to the darkness graphs) or light."""
    rng = np.random.default_rng(seed)
    h, w = size
    im = np.full((h, w, 3), (185, 190, 195), np.uint8)
    cv2.circle(im, (w // 2, h // 2), min(h, w) // 3, (50, 60, 70) if dark else (225, 230, 235), -1)
    noise = rng.normal(0, 6, im.shape)
    return np.clip(im + noise, 0, 255).astype(np.uint8)


def reference_input(image: np.ndarray, size=(S, S)) -> np.ndarray:
    """What the graph is fed, computed here without the backend: RGB, letterboxed on black into
    size (aspect kept, centred), divided by 255; (H, W, 3)."""
    rgb = image[..., ::-1]
    h, w = rgb.shape[:2]
    H, W = size
    scale = min(H / h, W / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) != (h, w):
        rgb = cv2.resize(
            np.ascontiguousarray(rgb), (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        )
    out = np.zeros((H, W, 3), np.float32)
    top, left = (H - nh) // 2, (W - nw) // 2
    out[top : top + nh, left : left + nw] = rgb / np.float32(255)
    return out


def reference_darkness(image: np.ndarray) -> float:
    dark = 1.0 - reference_input(image).mean(axis=2)
    return float(dark[S // 4 : 3 * S // 4, S // 4 : 3 * S // 4].mean())


def linear_score(raw: float, threshold: float) -> float:
    return min(max(raw / (2 * threshold), 0.0), 1.0)


@pytest.fixture(scope="module")
def discs():
    """Three dark discs (anomalies) and three light ones (normal), one of each not square."""
    dark = [disc(True, seed=1), disc(True, seed=2), disc(True, (384, 288), seed=3)]
    light = [disc(False, seed=4), disc(False, seed=5), disc(False, (288, 384), seed=6)]
    return dark, light


@pytest.fixture(scope="module")
def cookie_manifest(cookies_dir, tmp_path_factory):
    """The 63 real cookie photos, absolute paths."""
    entries = read_manifest(cookies_dir / "train.manifest")
    for e in entries:
        e.source_ref = str(e.path)
    path = tmp_path_factory.mktemp("cookies") / "all.manifest"
    write_manifest(path, entries)
    return path, entries


# --- each output kind --------------------------------------------------------------------------------


def test_score_graph_known_verdicts_and_numpy(tmp_path, discs, cookies_dir):
    model_dir = folder(tmp_path / "m", score_graph, {"output": {"kind": "score"}, "threshold": THRESHOLD})
    dark, light = discs
    with load_model(model_dir) as model:
        assert isinstance(model, OnnxModel) and not model.has_heat_maps
        verdicts = model.predict(dark + light)
        assert [v.label for v in verdicts] == ["anomaly"] * 3 + ["normal"] * 3
        # the same numbers as NumPy on the same preprocessing, on synthetic crops and real photos
        photos = [read_image(p) for p in sorted((cookies_dir / "images").glob("*.jpg"))[:6]]
        images = dark + light + photos
        raw = model.raw(images)
        expected = np.array([reference_darkness(im) for im in images])
        np.testing.assert_allclose(raw, expected, atol=1e-5)
        for v, r in zip(model.predict(images), expected):
            assert v.score == pytest.approx(linear_score(r, THRESHOLD), abs=1e-5)
            assert v.label == ("anomaly" if r >= THRESHOLD else "normal")
        assert model.predict([]) == [] and model.explain([]) == []
        assert [h for _, h in model.explain(light)] == [None] * 3  # a score says only whether


def test_probability_graph(tmp_path, discs):
    dark, light = discs
    model_dir = folder(tmp_path / "p", probability_graph, {"output": {"kind": "probability", "name": "prob"}})
    with load_model(model_dir) as model:  # no threshold: a probability's is 0.5
        images = dark + light
        scores = model.scores(images)
        d = np.array([reference_darkness(im) for im in images])
        expected = 1.0 / (1.0 + np.exp(-2 * GAIN * (d - THRESHOLD)))  # softmax of -z, z
        np.testing.assert_allclose(scores, expected, atol=1e-5)  # range [0, 1], threshold 0.5: the probability
        assert [v.label for v in model.predict(images)] == ["anomaly"] * 3 + ["normal"] * 3
    # the other class: the verdicts turn over
    meta = {"output": {"kind": "probability", "index": 1, "anomaly_class": 0}, "threshold": 0.5}
    with load_model(folder(tmp_path / "p0", probability_graph, meta)) as model:
        assert [v.label for v in model.predict(dark + light)] == ["normal"] * 3 + ["anomaly"] * 3
    # a threshold of its own: 0.9 scores 0.5, 0.95 scores 0.75
    meta = {"output": {"kind": "probability", "name": "prob"}, "threshold": 0.9}
    with load_model(folder(tmp_path / "p9", probability_graph, meta)) as model:
        p = 1.0 / (1.0 + np.exp(-2 * GAIN * (d - THRESHOLD)))
        s = np.where(p < 0.9, 0.5 * p / 0.9, 0.5 + 0.5 * (p - 0.9) / 0.1)
        np.testing.assert_allclose(model.scores(images), np.clip(s, 0, 1), atol=1e-5)


@pytest.mark.parametrize("reduce", ["max", "p99", "mean"])
def test_map_graph_scores_and_heat_maps(tmp_path, discs, reduce):
    dark, light = discs
    meta = {"input": {"size": [S, S]}, "output": {"kind": "map", "reduce": reduce}, "threshold": THRESHOLD}
    with load_model(folder(tmp_path / "map", map_graph, meta)) as model:
        assert model.has_heat_maps
        images = dark + light
        explained = model.explain(images)
        for image, (verdict, heat) in zip(images, explained):
            x = reference_input(image)
            m = (1.0 - x.mean(axis=2)).reshape(S // 4, 4, S // 4, 4).mean(axis=(1, 3))
            h, w = image.shape[:2]
            if h != w:  # the map's part over the image, not the letterbox's black bands
                cut = (S - round(min(h, w) * S / max(h, w))) // 2 // 4
                m = m[cut : S // 4 - cut] if h < w else m[:, cut : S // 4 - cut]
            raw = {"max": m.max(), "mean": m.mean(), "p99": np.percentile(m, 99)}[reduce]
            assert verdict.score == pytest.approx(linear_score(raw, THRESHOLD), abs=1e-5)
            # the heat map: over the image, 1.0 at the threshold (twice each pixel's score)
            assert heat is not None and heat.shape == image.shape[:2] and heat.dtype == np.float32
            assert overlay(image, heat).shape == image.shape
            peak = float(heat.max())
            assert peak == pytest.approx(2 * m.max() / (2 * THRESHOLD), rel=0.02)
        if reduce == "max":
            assert [v.label for v, _ in explained] == ["anomaly"] * 3 + ["normal"] * 3
            # where: the dark disc is hot in the middle, the light belt around it is not
            heat = explained[0][1]
            assert heat[192, 192] > 1.0 > heat[10, 10]
        assert model.predict(images) == [v for v, _ in explained]


def test_layouts_colours_and_a_fixed_batch(tmp_path, discs):
    """NHWC, BGR, grey, and a graph whose batch axis is fixed to 1 (run one image at a time)."""
    dark, light = discs
    images = dark + light
    expected = np.array([reference_darkness(im) for im in images])
    meta = {"input": {"layout": "NHWC", "colour": "bgr"}, "output": {"kind": "score"}, "threshold": THRESHOLD}
    with load_model(folder(tmp_path / "nhwc", score_graph, meta, layout="NHWC", batch=1)) as model:
        assert model.graph.batch == 1
        np.testing.assert_allclose(model.raw(images), expected, atol=1e-5)  # the channels' mean: same in BGR
    meta = {"input": {"colour": "grey"}, "output": {"kind": "score"}, "threshold": THRESHOLD}
    with load_model(folder(tmp_path / "grey", score_graph, meta, channels=1)) as model:
        grey = [cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) for im in images]
        ref = [reference_darkness(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)) for g in grey]
        np.testing.assert_allclose(model.raw(images), ref, atol=2e-3)  # the grey conversion's rounding
    # mean and std per channel (the ImageNet ones): the graph sees (x/255 - mean) / std
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    meta = {"input": {"mean": mean, "std": std}, "output": {"kind": "score"}, "threshold": THRESHOLD}
    with load_model(folder(tmp_path / "norm", score_graph, meta)) as model:
        ref = []
        for im in images:
            x = (reference_input(im) - np.float32(mean)) / np.float32(std)
            ref.append(float((1.0 - x.mean(axis=2))[S // 4 : 3 * S // 4, S // 4 : 3 * S // 4].mean()))
        np.testing.assert_allclose(model.raw(images), ref, atol=1e-4)


def test_a_graph_that_takes_one_image_at_a_time(tmp_path, discs):
    """A batch axis declared free, but a reshape fixed at export: found at load, run one by one."""
    dark_nodes, inits, dark = _darkness_nodes()
    mid_nodes, mid_inits = _middle_nodes(dark, "d")
    nodes = [*dark_nodes, *mid_nodes, helper.make_node("Reshape", ["d", "one_shape"], ["score"])]
    out = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])
    inits += [*mid_inits, _const("one_shape", [1], np.int64)]
    _save(tmp_path / "m" / "model.onnx", nodes, [_image_input()], [out], inits)
    write_meta(
        tmp_path / "m",
        {
            "format": "conveyor-qc-model",
            "version": 2,
            "backend": "onnx",
            "output": {"kind": "score"},
            "threshold": THRESHOLD,
        },
    )
    dark_discs, light = discs
    with load_model(tmp_path / "m") as model:
        assert model.graph.batch == 1
        expected = [reference_darkness(im) for im in dark_discs + light]
        np.testing.assert_allclose(model.raw(dark_discs + light), expected, atol=1e-5)


def test_many_images_go_in_batches(tmp_path, discs, monkeypatch):
    """A call's crops go through the graph as one batch, a long call in batches of MAX_BATCH."""
    model_dir = folder(tmp_path / "m", score_graph, {"output": {"kind": "score"}, "threshold": THRESHOLD})
    dark, light = discs
    with load_model(model_dir) as model:
        runs: list[int] = []
        real = model.graph._run
        monkeypatch.setattr(model.graph, "_run", lambda pixels: runs.append(len(pixels)) or real(pixels))
        model.predict(dark + light)
        assert runs == [6]
        runs.clear()
        images = (dark + light) * 6  # 36
        raw = model.raw(images)
        assert runs == [MAX_BATCH, 36 - MAX_BATCH]
        np.testing.assert_allclose(raw, np.tile(model.raw(dark + light), 6), atol=1e-6)


def test_close_releases_the_session(tmp_path, discs):
    model = load_model(folder(tmp_path / "m", score_graph, {"output": {"kind": "score"}, "threshold": THRESHOLD}))
    model.predict(discs[0])
    model.close()
    assert model.graph._session is None  # type: ignore[attr-defined]
    with pytest.raises(ModelError, match="closed"):
        model.predict(discs[0])


def test_nan_scores_half(tmp_path):
    """A graph that gives no number judges the crop at the threshold: an anomaly, to be looked at."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Div", ["m", "zero"], ["q"]),
        helper.make_node("Mul", ["q", "zero"], ["y"]),
    ]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])
    _save(tmp_path / "nan" / "model.onnx", nodes, [_image_input()], [out], [_const("zero", 0.0)])
    write_meta(
        tmp_path / "nan",
        {"format": "conveyor-qc-model", "version": 2, "backend": "onnx", "output": {"kind": "score"}, "threshold": 1.0},
    )
    with load_model(tmp_path / "nan") as model:
        (v,) = model.predict([np.zeros((50, 50, 3), np.uint8)])
        assert v.label == "anomaly" and v.score == 0.5


def test_a_realistic_conv_net_runs(tmp_path, discs):
    """The conv net the costs in docs/anomaly.md were measured with, small: a map at 1/16 of the input."""
    meta = {
        "input": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "output": {"kind": "map", "reduce": "p99"},
        "threshold": 1.0,
    }
    with load_model(folder(tmp_path / "conv", conv_net, meta, size=64)) as model:
        assert model.graph.size == (64, 64)
        for image, (v, heat) in zip(discs[0], model.explain(discs[0])):
            assert 0.0 <= v.score <= 1.0 and heat is not None and heat.shape == image.shape[:2]


# --- the package's paths: load_model, run, predict, evaluate-model, import-onnx ----------------------------


def test_run_video_judges_objects_with_an_onnx_model(make_clip, tmp_path):
    from conveyor_qc.run.job import run_video

    meta = {"input": {"size": [S, S]}, "output": {"kind": "map", "reduce": "p99"}, "threshold": THRESHOLD}
    model_dir = folder(tmp_path / "map", map_graph, meta)
    clip = make_clip("cookies", seed=3, seconds=4.0)
    result = run_video(clip.video, tmp_path / "run", video=False, crops=False, model=model_dir)
    with open(tmp_path / "run" / "objects.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    judged = [r for r in rows if r["label"] != "unknown"]
    assert len(judged) >= 0.8 * len(rows) and judged
    for r in judged:
        assert (r["label"] == "anomaly") == (float(r["score"]) >= 0.5)
    assert result.summary["anomalies"] + result.summary["normal"] == len(judged)
    assert result.summary["model"]["sha256"]  # model.json's: provenance as for a local model


def test_predict_and_evaluate_model_cli(tmp_path, cookie_manifest, capsys):
    manifest, entries = cookie_manifest
    meta = {"output": {"kind": "map"}, "input": {"size": [S, S]}, "threshold": THRESHOLD}
    model_dir = folder(tmp_path / "map", map_graph, meta)
    paths = [str(e.path) for e in entries[:3]]
    assert main(["predict", str(model_dir), *paths, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    with load_model(model_dir) as model:
        expected = model.predict([read_image(p) for p in paths])
    assert [(r["path"], r["label"], r["score"]) for r in rows] == [
        (p, v.label, round(v.score, 4)) for p, v in zip(paths, expected)
    ]
    assert main(["predict", str(model_dir), paths[0], "--heatmap", str(tmp_path / "heat")]) == 0
    out = capsys.readouterr().out
    assert "peak" in out and (tmp_path / "heat" / f"{Path(paths[0]).stem}-heat.png").is_file()
    # a score graph says only whether
    score_dir = folder(tmp_path / "score", score_graph, {"output": {"kind": "score"}, "threshold": THRESHOLD})
    assert main(["predict", str(score_dir), paths[0], "--heatmap", str(tmp_path / "h2")]) == 1
    assert "says only whether, not where" in capsys.readouterr().err
    r = evaluate_model(model_dir, manifest)
    assert r["images"] == 63 and r["tp"] + r["fp"] + r["fn"] + r["tn"] == 63
    assert main(["evaluate-model", str(model_dir), str(manifest), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == r


def test_import_onnx_with_a_threshold(tmp_path, discs, capsys):
    dark, light = discs
    src = probability_graph(tmp_path / "exported" / "classifier.onnx")
    out = tmp_path / "model"
    assert main(["import-onnx", str(src), "--out", str(out), "--output", "prob", "--output-kind", "probability"]) == 0
    assert str(out) in capsys.readouterr().out
    meta = json.loads((out / "model.json").read_text())
    assert meta["backend"] == "onnx" and meta["threshold"] == 0.5 and meta["input"]["size"] == [S, S]
    assert meta["output"] == {"kind": "probability", "name": "prob"} and len(meta["sha256"]) == 64
    assert (out / "model.onnx").read_bytes() == src.read_bytes()
    with load_model(out) as model:
        assert [v.label for v in model.predict(dark + light)] == ["anomaly"] * 3 + ["normal"] * 3
    # the output by index, a threshold and a range of its own
    args = ["import-onnx", str(src), "--out", str(tmp_path / "m2"), "--output", "1", "--output-kind", "probability"]
    assert main([*args, "--threshold", "0.8", "--range", "0.2", "1"]) == 0
    meta = json.loads((tmp_path / "m2" / "model.json").read_text())
    assert meta["output"]["name"] == "prob" and meta["threshold"] == 0.8 and meta["range"] == [0.2, 1.0]
    # a map with mean and std, the size from the graph being fixed
    conv = conv_net(tmp_path / "exported" / "conv.onnx", size=64)
    args = ["import-onnx", str(conv), "--out", str(tmp_path / "m3"), "--output-kind", "map", "--reduce", "p99"]
    normalise = ["--mean", "0.485", "0.456", "0.406", "--std", "0.229", "0.224", "0.225"]
    assert main([*args, "--threshold", "2", *normalise]) == 0
    meta = json.loads((tmp_path / "m3" / "model.json").read_text())
    assert meta["input"]["size"] == [64, 64] and meta["input"]["mean"] == [0.485, 0.456, 0.406]
    assert meta["output"] == {"kind": "map", "name": "map", "reduce": "p99"}
    capsys.readouterr()
    # refused before anything is written
    bad = tmp_path / "never"
    args = ["import-onnx", str(conv), "--out", str(bad), "--output-kind", "map"]
    assert main([*args, "--threshold", "1", "--input-size", "32"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match the graph's input" in err and not bad.exists()
    assert main(args) == 1
    assert "needs its threshold" in capsys.readouterr().err and not bad.exists()
    with pytest.raises(ModelError, match="trained elsewhere"):
        train_model(tmp_path / "x.manifest", tmp_path / "y", backend="onnx")
    # as a user tries it: `train --backend onnx` says how its folder is made, in one line
    capsys.readouterr()
    assert main(["train", str(tmp_path / "x.manifest"), "--out", str(tmp_path / "y"), "--backend", "onnx"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "import-onnx" in err and f"--calibrate {tmp_path / 'x.manifest'}" in err
    assert not (tmp_path / "y").exists()


def test_import_onnx_calibrates_on_a_manifest(tmp_path, cookie_manifest, capsys):
    """The threshold that maximises anomaly F1 on the manifest; evaluate-model agrees with it."""
    manifest, entries = cookie_manifest
    src = map_graph(tmp_path / "map.onnx")
    out = tmp_path / "model"
    args = ["import-onnx", str(src), "--out", str(out), "--output-kind", "map", "--reduce", "p99"]
    assert main([*args, "--input-size", str(S), "--calibrate", str(manifest)]) == 0
    printed = capsys.readouterr().out
    meta = json.loads((out / "model.json").read_text())
    cal = meta["calibration"]
    assert cal["images"] == 63 and f"F1 {cal['f1']:.3f}" in printed
    # the best F1 over every possible threshold, found by brute force
    with load_model(out) as model:
        raw = model.raw([read_image(e.path) for e in entries])
    y = np.array([e.label == "anomaly" for e in entries])
    f1s = []
    for t in np.unique(raw):
        pred = raw >= t
        tp = int((pred & y).sum())
        f1s.append(2 * tp / (pred.sum() + y.sum()))
    assert cal["f1"] == pytest.approx(max(f1s))
    r = evaluate_model(out, manifest)
    assert r["f1"] == pytest.approx(cal["f1"]) and (r["tp"], r["fp"]) == (cal["tp"], cal["fp"])
    assert meta["range"] if meta["threshold"] <= 0 else "range" not in meta


def test_best_threshold():
    t, f = best_threshold(np.array([0.1, 0.2, 0.9, 0.8, 0.3]), np.array([0, 0, 1, 1, 0]))
    assert t == pytest.approx(0.55) and f["f1"] == 1.0 and (f["tp"], f["fp"], f["fn"], f["tn"]) == (2, 0, 0, 3)
    # ties are never split: equal values get one verdict
    t, f = best_threshold(np.array([0.5, 0.5, 0.1]), np.array([1, 0, 0]))
    assert t == pytest.approx(0.3) and f["tp"] == 1 and f["fp"] == 1
    # negative raw values (a log-likelihood)
    t, _ = best_threshold(np.array([-9.0, -8.0, -2.0, -1.0]), np.array([0, 0, 1, 1]))
    assert t == pytest.approx(-5.0)


# --- a broken or mismatched folder: one line naming the problem -------------------------------------------


def _score(path, **kw):
    return score_graph(path, **kw)


def _booleans(path):
    """anomalib's pred_label: a verdict, not a number."""
    dark_nodes, inits, dark = _darkness_nodes()
    mid_nodes, mid_inits = _middle_nodes(dark, "d")
    nodes = [*dark_nodes, *mid_nodes, helper.make_node("Greater", ["d", "half"], ["pred_label"])]
    out = helper.make_tensor_value_info("pred_label", TensorProto.BOOL, ["N"])
    return _save(path, nodes, [_image_input()], [out], [*inits, *mid_inits, _const("half", 0.5)])


def _two_inputs(path):
    nodes = [
        helper.make_node("Add", ["x", "x2"], ["sum"]),
        helper.make_node("ReduceMean", ["sum"], ["y"], axes=[1, 2, 3], keepdims=0),
    ]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])
    return _save(path, nodes, [_image_input(), _image_input(name="x2")], [out], [])


BROKEN = {
    # name: (graph maker or None, model.json beyond format/version/backend, the message)
    "no model.onnx": (None, {"output": {"kind": "score"}, "threshold": 0.5}, "model.onnx: no such file"),
    "not ONNX": ("text", {"output": {"kind": "score"}, "threshold": 0.5}, "not an ONNX graph onnxruntime can load"),
    "empty file": ("empty", {"output": {"kind": "score"}, "threshold": 0.5}, "not an ONNX graph onnxruntime can load"),
    "no output": (_score, {"threshold": 0.5}, "output must be an object"),
    "no kind": (_score, {"output": {}, "threshold": 0.5}, r"no output.kind \(score \| probability \| map\)"),
    "bad kind": (_score, {"output": {"kind": "logits"}, "threshold": 0.5}, "output.kind must be score"),
    "bad layout": (
        _score,
        {"input": {"layout": "NCWH"}, "output": {"kind": "score"}, "threshold": 0.5},
        "input.layout must be NCHW | NHWC",
    ),
    "unknown field": (
        _score,
        {"input": {"color": "rgb"}, "output": {"kind": "score"}, "threshold": 0.5},
        "unknown field input.color",
    ),
    "bad mean": (
        _score,
        {"input": {"mean": [0.1, 0.2]}, "output": {"kind": "score"}, "threshold": 0.5},
        "input.mean must be a number or a list of 3",
    ),
    "bad std": (
        _score,
        {"input": {"std": 0}, "output": {"kind": "score"}, "threshold": 0.5},
        "input.std must be a number or a list of 3 above 0",
    ),
    "no threshold": (_score, {"output": {"kind": "score"}}, "no threshold"),
    "threshold not a number": (
        _score,
        {"output": {"kind": "score"}, "threshold": "high"},
        "threshold must be a number",
    ),
    "threshold outside range": (
        _score,
        {"output": {"kind": "score"}, "threshold": 0.5, "range": [0.6, 1]},
        r"range \[0.6, 1\] must have the threshold 0.5 inside it",
    ),
    "threshold at 0 without range": (
        _score,
        {"output": {"kind": "score"}, "threshold": 0},
        "threshold 0 is not above 0: give range",
    ),
    "size mismatch": (
        _score,
        {"input": {"size": [224, 224]}, "output": {"kind": "score"}, "threshold": 0.5},
        r"input.size \[224, 224\] does not match the graph's input 'x' of shape \['N', 3, 96, 96\]",
    ),
    "no size for a free graph": (
        map_graph,
        {"output": {"kind": "map"}, "threshold": 0.5},
        "has no fixed height and width: give input.size",
    ),
    "wrong layout": (
        _score,
        {"input": {"layout": "NHWC"}, "output": {"kind": "score"}, "threshold": 0.5},
        "takes 96 channels on axis 3 .NHWC., input.colour 'rgb' gives 3",
    ),
    "wrong channels": (
        _score,
        {"input": {"colour": "grey"}, "output": {"kind": "score"}, "threshold": 0.5},
        "takes 3 channels on axis 1",
    ),
    "booleans": (
        _booleans,
        {"output": {"kind": "score"}, "threshold": 0.5},
        "output 'pred_label' holds bool, not numbers",
    ),
    "two inputs": (
        _two_inputs,
        {"output": {"kind": "score"}, "threshold": 0.5},
        r"the graph has 2 inputs \(x, x2\); conveyor-qc feeds it one batch of images",
    ),
    "input name": (
        _score,
        {"input": {"name": "image"}, "output": {"kind": "score"}, "threshold": 0.5},
        r"input.name 'image' is not an input of the graph \(x\)",
    ),
    "output index": (
        probability_graph,
        {"output": {"kind": "probability", "index": 2}},
        r"output.index 2: the graph has 2 output\(s\) \(0: logits, 1: prob\)",
    ),
    "output name": (
        probability_graph,
        {"output": {"kind": "probability", "name": "probs"}},
        "output.name 'probs' is not an output of the graph",
    ),
    "score kind on a map": (
        map_graph,
        {"input": {"size": [S, S]}, "output": {"kind": "score"}, "threshold": 0.5},
        r"output 'map' of shape \[\d, 1, 24, 24\] is not a score",
    ),
    "map kind on a score": (
        _score,
        {"output": {"kind": "map"}, "threshold": 0.5},
        r"output 'score' of shape \[\d\] is not a score map",
    ),
    "class out of range": (
        probability_graph,
        {"output": {"kind": "probability", "name": "prob", "anomaly_class": 2}},
        "output.anomaly_class 2: output 'prob' of shape .* has 2 classes",
    ),
    "reduce on a score": (
        _score,
        {"output": {"kind": "score", "reduce": "max"}, "threshold": 0.5},
        "output.reduce is for a map output",
    ),
    "bad reduce": (
        map_graph,
        {"input": {"size": [S, S]}, "output": {"kind": "map", "reduce": "p200"}, "threshold": 0.5},
        "output.reduce must be max, mean or a percentile",
    ),
    "checksum": (
        _score,
        {"output": {"kind": "score"}, "threshold": 0.5, "sha256": "0" * 64},
        "its checksum differs from model.json's sha256",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_folder_is_one_line(case, tmp_path, capsys):
    maker, meta, message = BROKEN[case]
    d = tmp_path / "model"
    d.mkdir()
    if maker == "text":
        (d / "model.onnx").write_text('{"not": "a graph"}\n')
    elif maker == "empty":
        (d / "model.onnx").write_bytes(b"")
    elif maker is not None:
        maker(d / "model.onnx")
    write_meta(d, {"format": "conveyor-qc-model", "version": 2, "backend": "onnx", **meta})
    with pytest.raises(ModelError, match=message):
        load_model(d)
    image = tmp_path / "crop.png"
    cv2.imwrite(str(image), disc(True))
    assert main(["predict", str(d), str(image)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("conveyor-qc predict: error: ")


def test_without_onnxruntime_one_line_names_the_extra(tmp_path, monkeypatch, capsys):
    d = folder(tmp_path / "m", score_graph, {"output": {"kind": "score"}, "threshold": THRESHOLD})
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime: ImportError
    with pytest.raises(
        ModelError, match=r'needs onnxruntime, which is not installed: pip install "conveyor-qc\[onnx\]"'
    ):
        load_model(d)
    image = tmp_path / "crop.png"
    cv2.imwrite(str(image), disc(True))
    assert main(["predict", str(d), str(image)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "conveyor-qc[onnx]"' in err
