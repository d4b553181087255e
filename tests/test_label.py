"""`conveyor-qc label`: the labelling page and its server.

The server tests run everywhere; the page is driven in a real headless browser
(Debian's chromium and chromedriver, through Selenium), skipped with the reason
when those are missing (`make test` installs them). Where the model looks
(`--model`) is tested with a model trained on the run's own crops (a second) and
a crop given a bite out of it.
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import popen_interruptible
from conveyor_qc.cli import main
from conveyor_qc.dataset.label_server import Explanation, HeatCache, LabelError, LabelStore, make_server, running

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


# --- fixtures and helpers ----------------------------------------------------------


@pytest.fixture(scope="module")
def source_run(make_clip, tmp_path_factory) -> Path:
    """A real run of a short synthetic clip (made once for this file)."""
    from conveyor_qc.run.job import run_video

    clip = make_clip("cookies", seed=5, seconds=4)
    out = tmp_path_factory.mktemp("label-run") / "run"
    run_video(clip.video, out, video=False)
    return out


@pytest.fixture
def run_dir(source_run, tmp_path) -> Path:
    """A fresh copy of the run for one test (labels.csv is written into it)."""
    dst = tmp_path / "run"
    shutil.copytree(source_run, dst)
    return dst


def object_ids(run: Path) -> list[int]:
    with open(run / "objects.csv", newline="") as fh:
        return [int(r["track_id"]) for r in csv.DictReader(fh)]


def with_crops(run: Path) -> list[int]:
    return [t for t in object_ids(run) if any((run / "crops" / str(t)).glob("*.jpg"))]


def as_old_png_run(run: Path) -> None:
    """Turn a run's crops into PNGs, as runs wrote them before output.crop_format."""
    import cv2

    for p in sorted((run / "crops").rglob("*.jpg")):
        assert cv2.imwrite(str(p.with_suffix(".png")), cv2.imread(str(p)))
        p.unlink()


def read_labels(run: Path) -> dict[str, str]:
    path = run / "labels.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as fh:
        return {r["track_id"]: r["label"] for r in csv.DictReader(fh)}


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file of the run folder and its bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def serving(run: Path, explain=None, order: str | None = "passage", asker=None):
    """The page's server on a free port, with the page's questions (``Asker``, or ``asker``) unless
    ``order`` is None. The tests of labelling itself show the objects as they passed (the order
    the tests walk); the order's own tests below use ``order="active"``."""
    from conveyor_qc.dataset.asking import Asker

    if order is None:
        return running(make_server(run, port=0, explain=explain))
    return running(make_server(run, port=0, explain=explain, order=order, asker=asker or Asker))


def request(
    server, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One raw request (the path is sent exactly as given)."""
    status, _, data = request_full(server, method, path, body, headers)
    return status, data


def request_full(
    server, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """``request`` with the answer's headers."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": f"127.0.0.1:{port}", **(headers or {})}
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def post_label(server, track, label, ctype="application/json") -> tuple[int, bytes]:
    return request(
        server, "POST", f"/api/labels/{track}", json.dumps({"label": label}).encode(), {"Content-Type": ctype}
    )


@pytest.fixture(scope="module")
def crop_model(source_run, tmp_path_factory) -> Path:
    """A local anomaly model trained (one-class) on every third crop of the run."""
    from conveyor_qc.anomaly.model import train_model
    from conveyor_qc.dataset.manifest import ManifestEntry, write_manifest

    tmp = tmp_path_factory.mktemp("label-model")
    crops = sorted((source_run / "crops").rglob("*.jpg"))[::3]
    write_manifest(tmp / "crops.manifest", [ManifestEntry(str(p), "normal") for p in crops])
    train_model(tmp / "crops.manifest", tmp / "model")
    return tmp / "model"


@pytest.fixture(scope="module")
def model(crop_model):
    from conveyor_qc.anomaly.model import load_model

    with load_model(crop_model) as m:
        yield m


@pytest.fixture
def explain(model):
    """What `conveyor-qc label --model` gives the server, counting its calls."""
    from conveyor_qc.cli.dataset import model_explainer

    inner = model_explainer(model)

    def counted(image):
        counted.calls += 1
        return inner(image)

    counted.calls = 0
    return counted


def bite(run: Path):
    """Take a bite out of the first crop of the first object with crops (the belt's colour over
    its edge): an anomaly the model sees. Returns (track id, crop name, the crop as read)."""
    import cv2

    tid = with_crops(run)[0]
    path = sorted((run / "crops" / str(tid)).glob("*.jpg"))[0]
    image = cv2.imread(str(path))
    h, w = image.shape[:2]
    belt = tuple(int(c) for c in image[5, 5])
    cv2.circle(image, (int(0.78 * w), int(0.31 * h)), int(0.18 * w), belt, -1)
    assert cv2.imwrite(str(path), image)
    return tid, path.name, cv2.imread(str(path))  # as the server reads it: after JPEG


def decode_png(body: bytes):
    import cv2
    import numpy as np

    assert body.startswith(b"\x89PNG\r\n\x1a\n")
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


def wait_for(check, timeout: float = 5.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- the server, without a browser -------------------------------------------------


def test_api_lists_objects_and_saves_each_change(run_dir):
    ids = object_ids(run_dir)
    with serving(run_dir) as server:
        with urllib.request.urlopen(server.url + "api/objects", timeout=5) as r:
            data = json.load(r)
        assert [o["track_id"] for o in data["objects"]] == ids
        first = data["objects"][0]
        assert first["start_seconds"] == pytest.approx((first["first_frame"] - 1) / data["video_fps"], abs=1e-3)
        assert data["counts"] == {"total": len(ids), "normal": 0, "anomaly": 0, "left": len(ids)}
        crop = next(o["crops"][0] for o in data["objects"] if o["crops"])
        assert crop.endswith(".jpg")  # a run writes JPEG crops by default
        with urllib.request.urlopen(server.url + crop.lstrip("/"), timeout=5) as r:
            assert r.headers["Content-Type"] == "image/jpeg" and r.read(3) == b"\xff\xd8\xff"
        assert data["heat"] is False  # no model: no heat maps
        assert request(server, "GET", crop.replace("/crops/", "/heat/", 1))[0] == 404
        with urllib.request.urlopen(server.url, timeout=5) as r:
            assert b"app.js" in r.read()

        status, body = post_label(server, ids[0], "normal")
        assert status == 200 and json.loads(body)["label"] == "normal"
        assert read_labels(run_dir) == {str(ids[0]): "normal"}
        status, _ = request(
            server,
            "PUT",
            f"/api/labels/{ids[1]}",
            b'{"label": "anomaly"}',
            {"Content-Type": "application/json; charset=utf-8"},
        )
        assert status == 200
        assert read_labels(run_dir) == {str(ids[0]): "normal", str(ids[1]): "anomaly"}
        status, body = post_label(server, ids[0], None)
        assert status == 200 and json.loads(body)["counts"]["left"] == len(ids) - 1
        assert read_labels(run_dir) == {str(ids[1]): "anomaly"}
    assert not [p for p in run_dir.iterdir() if ".tmp" in p.name]  # no temporary files left


def test_concurrent_changes_all_saved(run_dir):
    ids = object_ids(run_dir)
    with serving(run_dir) as server:
        results = []
        threads = [
            threading.Thread(
                target=lambda t=t, i=i: results.append(post_label(server, t, "normal" if i % 2 else "anomaly")[0])
            )
            for i, t in enumerate(ids)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [200] * len(ids)
    assert read_labels(run_dir) == {str(t): "normal" if i % 2 else "anomaly" for i, t in enumerate(ids)}


def test_bad_requests_are_refused_and_change_nothing(run_dir):
    ids = object_ids(run_dir)
    (run_dir / "labels.csv").write_text(f"track_id,label\n{ids[0]},normal\n")
    outside = run_dir.parent / "secret.txt"
    outside.write_text("secret")
    tid = with_crops(run_dir)[0]
    real = sorted((run_dir / "crops" / str(tid)).glob("*.jpg"))[0].name
    (run_dir / "crops" / str(tid) / "999998.png").symlink_to(outside)  # a link out of the run
    (run_dir / "crops" / str(tid) / "999997.png").symlink_to(run_dir / "summary.json")  # out of crops/
    (run_dir / "crops" / str(tid) / "999996.jpg").symlink_to(outside)
    (run_dir / "crops" / str(tid) / "999995.jpeg").symlink_to(run_dir / "objects.csv")
    (run_dir / "crops" / str(tid) / "999994.gif").write_bytes(b"GIF89a")  # not a crop's suffix
    before = snapshot(run_dir)
    js = {"Content-Type": "application/json"}
    with serving(run_dir) as server:
        assert post_label(server, 99999, "normal")[0] == 404  # unknown track
        assert post_label(server, ids[1], "broken")[0] == 400  # bad label
        assert post_label(server, ids[1], "Normal")[0] == 400
        assert post_label(server, ids[1], 1)[0] == 400
        assert post_label(server, ids[1], "normal", ctype="text/plain")[0] == 415
        assert post_label(server, ids[1], "normal", ctype="application/x-www-form-urlencoded")[0] == 415
        assert request(server, "POST", f"/api/labels/{ids[1]}", b"{label: normal", js)[0] == 400
        assert request(server, "POST", f"/api/labels/{ids[1]}", b"\xff\xfe", js)[0] == 400
        assert request(server, "POST", f"/api/labels/{ids[1]}", b'["normal"]', js)[0] == 400
        assert request(server, "POST", f"/api/labels/{ids[1]}", b'{"lab": "normal"}', js)[0] == 400
        assert request(server, "POST", f"/api/labels/{ids[1]}", b"x" * 10000, js)[0] == 413
        assert request(server, "POST", "/api/labels/-1", b'{"label": "normal"}', js)[0] == 404
        assert request(server, "POST", f"/api/labels/{ids[1]}/../{ids[2]}", b'{"label": "normal"}', js)[0] == 404
        assert request(server, "POST", "/api/objects", b'{"label": "normal"}', js)[0] == 404
        assert request(server, "DELETE", f"/api/labels/{ids[0]}")[0] == 405
        # a page elsewhere: another origin, or DNS rebinding to 127.0.0.1
        assert (
            request(
                server, "POST", f"/api/labels/{ids[1]}", b'{"label": "normal"}', {**js, "Origin": "http://evil.example"}
            )[0]
            == 403
        )
        assert (
            request(server, "POST", f"/api/labels/{ids[1]}", b'{"label": "normal"}', {**js, "Host": "evil.example"})[0]
            == 403
        )
        assert request(server, "GET", "/api/objects", headers={"Host": "evil.example:80"})[0] == 403

        assert request(server, "GET", f"/crops/{tid}/{real}")[0] == 200
        for path in [
            "/crops/../objects.csv",
            "/crops/%2e%2e/objects.csv",
            "/crops/%2E%2E/summary.json",
            f"/crops/{tid}/../../summary.json",
            f"/crops/{tid}/..%2f..%2fsummary.json",
            f"/crops/{tid}/%2e%2e%2f%2e%2e%2fsummary.json",
            "/crops//etc/passwd",
            "/crops/%2fetc%2fpasswd",
            f"/crops/{tid}/..\\..\\summary.json",
            "/crops/../../../../etc/passwd",
            f"/crops/{tid}/999998.png",
            f"/crops/{tid}/999997.png",
            f"/crops/{tid}/{real[:-4]}.PNG",
            f"/crops/{tid}/999996.jpg",
            f"/crops/{tid}/999995.jpeg",
            f"/crops/{tid}/999994.gif",
            f"/crops/{tid}/{real[:-4]}.JPG",
            f"/crops/{tid}/{real[:-4]}.png",
            f"/crops/{tid}/{real[:-4]}.jpeg",
            f"/crops/{tid}/{real}/",
            f"/crops/{tid}/{real}%00.png",
            f"/crops/{tid}/{real}.png",
            f"/crops/{tid}/../{tid}/{real}",
            f"/crops/{tid}/.%2e/{tid}/{real}",
            f"/crops/99999/{real}",
            f"/crops/{tid}",
            "/crops/",
            "/objects.csv",
            "/labels.csv",
            "/../objects.csv",
            "/%2e%2e/objects.csv",
            "/web/app.js",
            "/label_server.py",
            "http://127.0.0.1/objects.csv",
            "/etc/passwd",
        ]:
            status, body = request(server, "GET", path)
            assert 400 <= status < 500, path
            assert b"secret" not in body and b"video_fps" not in body and b"track_id,first" not in body, path
        # a crop swapped for a link after the server started is not served either
        crop = run_dir / "crops" / str(tid) / real
        crop.unlink()
        crop.symlink_to(outside)
        assert request(server, "GET", f"/crops/{tid}/{real}")[0] == 404
        crop.unlink()
        (run_dir / "crops" / str(tid) / real).write_bytes(before[f"crops/{tid}/{real}"])
    assert snapshot(run_dir) == before


def test_crops_through_a_link_out_of_the_run_are_not_served(run_dir, tmp_path):
    """crops/ itself, or one object's folder in it, a symbolic link to a folder outside the run:
    nothing of that folder is served."""
    tid = with_crops(run_dir)[0]
    name = sorted((run_dir / "crops" / str(tid)).glob("*.jpg"))[0].name
    secret = (run_dir / "crops" / str(tid) / name).read_bytes()
    assert secret.startswith(b"\xff\xd8\xff")
    outside = tmp_path / "elsewhere"
    shutil.move(run_dir / "crops", outside)  # crops/<tid>/<name> now lives outside the run
    (run_dir / "crops").symlink_to(outside, target_is_directory=True)
    with serving(run_dir) as server:
        assert server.store.objects[tid].crops == []
        assert any("crops" in w and "outside" in w for w in server.store.warnings)
        for path in (f"/crops/{tid}/{name}", f"/heat/{tid}/{name}"):
            status, body = request(server, "GET", path)
            assert status == 404 and secret not in body, path
        status, body = request(server, "GET", "/api/objects")
        assert status == 200 and not any(o["crops"] for o in json.loads(body)["objects"])

    # a real crops/, one object's folder a link to a folder outside
    (run_dir / "crops").unlink()
    (run_dir / "crops").mkdir()
    (run_dir / "crops" / str(tid)).symlink_to(outside / str(tid), target_is_directory=True)
    with serving(run_dir) as server:
        assert server.store.objects[tid].crops == []
        status, body = request(server, "GET", f"/crops/{tid}/{name}")
        assert status == 404 and secret not in body


def test_unparseable_bodies_get_400_and_the_server_goes_on(run_dir, capsys):
    ids = object_ids(run_dir)
    js = {"Content-Type": "application/json"}
    with serving(run_dir) as server:
        for body in (b"[" * 2000 + b"]" * 2000, b'{"label": ' * 400, b"1" * 4096, b"\x00", b"\xed\xa0\x80"):
            status, answer = request(server, "POST", f"/api/labels/{ids[0]}", body, js)
            assert status == 400, body[:20]
            error = json.loads(answer)["error"]
            assert "\n" not in error
        # a Content-Length that is not a number, though str.isdigit() says it is
        status, answer = request(server, "POST", f"/api/labels/{ids[0]}", b"", {**js, "Content-Length": "\xb2"})
        assert status == 411 and "error" in json.loads(answer)
        assert post_label(server, ids[0], "normal")[0] == 200  # still serving
    assert read_labels(run_dir) == {str(ids[0]): "normal"}
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RecursionError" not in err


def test_stalled_requests_are_dropped(run_dir):
    """Requests that announce a body and never send it: the server answers others meanwhile,
    and lets them go after its timeout (1 s here), so their threads end."""
    ids = object_ids(run_dir)
    before = threading.active_count()
    server = make_server(run_dir, port=0, timeout=1.0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    stalled = []
    try:
        for _ in range(50):
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(
                f"POST /api/labels/{ids[0]} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode()
            )
            stalled.append(s)
        wait_for(lambda: threading.active_count() >= before + 50, what="a thread for each stalled request")
        status, _ = request(server, "GET", "/api/objects")  # answered while they hang
        assert status == 200
        # each stalled one is dropped (closed, not answered with a label change)
        for s in stalled:
            assert b"200 OK" not in s.recv(4096)
        wait_for(lambda: threading.active_count() <= before + 2, timeout=20, what="their threads to end")
        assert read_labels(run_dir) == {}
    finally:
        for s in stalled:
            s.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_connections_over_the_cap_are_refused_at_once(run_dir):
    server = make_server(run_dir, port=0, timeout=1.0, max_connections=5)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    idle = []
    try:
        idle = [socket.create_connection((host, port), timeout=5) for _ in range(5)]  # send nothing
        wait_for(lambda: server.connections == 5, what="5 connections held")
        status, body = request(server, "GET", "/api/objects")
        assert status == 503 and "error" in json.loads(body)
        wait_for(lambda: server.connections == 0, timeout=20, what="idle connections dropped")
        assert request(server, "GET", "/api/objects")[0] == 200
    finally:
        for s in idle:
            s.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_heat_map_of_a_crop_served_and_cached(run_dir, model, explain):
    """/heat/: the crop with the model's heat map over it (PNG, the crop's size), its score and
    label in the headers, made once per crop."""
    import numpy as np

    from conveyor_qc.anomaly.heatmap import overlay

    tid, name, crop = bite(run_dir)
    verdict, heat = model.explain([crop])[0]
    assert heat is not None and heat.max() > 1.0 and verdict.label == "anomaly"  # the bite is seen
    with serving(run_dir, explain=explain) as server:
        with urllib.request.urlopen(server.url + "api/objects", timeout=5) as r:
            assert json.load(r)["heat"] is True
        status, headers, body = request_full(server, "GET", f"/heat/{tid}/{name}")
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert headers["X-Anomaly-Score"] == f"{verdict.score:.4f}"
        assert headers["X-Anomaly-Label"] == "anomaly" and headers["X-Anomaly-Map"] == "yes"
        shown = decode_png(body)
        assert shown.shape == crop.shape
        assert np.array_equal(shown, overlay(crop, heat))
        # the crop itself where the heat is below 0.5, coloured where it is above
        assert np.array_equal(shown[heat <= 0.5], crop[heat <= 0.5])
        hot = heat > 0.6
        changed = np.abs(shown.astype(int) - crop.astype(int)).max(axis=-1) > 0
        assert hot.sum() > 1000 and changed[hot].mean() > 0.95

        status, headers, again = request_full(server, "HEAD", f"/heat/{tid}/{name}")
        assert status == 200 and again == b"" and headers["X-Anomaly-Score"] == f"{verdict.score:.4f}"
        assert request_full(server, "GET", f"/heat/{tid}/{name}")[2] == body
        assert explain.calls == 1  # made once, then served from the cache
        other = server.store.objects[with_crops(run_dir)[1]]
        assert request(server, "GET", f"/heat/{other.track_id}/{other.crops[0]}")[0] == 200
        assert explain.calls == 2
        # a crop replaced on disk is explained afresh
        (run_dir / "crops" / str(tid) / name).write_bytes(
            (run_dir / "crops" / str(other.track_id) / other.crops[0]).read_bytes()
        )
        status, headers, _ = request_full(server, "GET", f"/heat/{tid}/{name}")
        assert status == 200 and explain.calls == 3 and headers["X-Anomaly-Score"] != f"{verdict.score:.4f}"


def test_heat_paths_refused_like_crops(run_dir, explain):
    ids = object_ids(run_dir)
    outside = run_dir.parent / "secret.txt"
    outside.write_text("secret")
    tid = with_crops(run_dir)[0]
    real = sorted((run_dir / "crops" / str(tid)).glob("*.jpg"))[0].name
    (run_dir / "crops" / str(tid) / "999998.png").symlink_to(outside)  # a link out of the run
    (run_dir / "crops" / str(tid) / "999997.jpg").symlink_to(run_dir / "summary.json")  # out of crops/
    (run_dir / "crops" / str(tid) / "999996.jpg").write_bytes(b"not an image")  # a crop's name, not an image
    before = snapshot(run_dir)
    with serving(run_dir, explain=explain) as server:
        for path in [
            "/heat/../objects.csv",
            "/heat/%2e%2e/objects.csv",
            f"/heat/{tid}/../../summary.json",
            f"/heat/{tid}/..%2f..%2fsummary.json",
            f"/heat/{tid}/%2e%2e%2f%2e%2e%2fsummary.json",
            "/heat//etc/passwd",
            "/heat/%2fetc%2fpasswd",
            f"/heat/{tid}/..\\..\\summary.json",
            "/heat/../../../../etc/passwd",
            f"/heat/{tid}/999998.png",
            f"/heat/{tid}/999997.jpg",
            f"/heat/{tid}/999996.jpg",
            f"/heat/{tid}/{real[:-4]}.JPG",
            f"/heat/{tid}/{real}/",
            f"/heat/{tid}/{real}%00.png",
            f"/heat/{tid}/../{tid}/{real}",
            f"/heat/99999/{real}",
            f"/heat/{ids[-1] + 1}/{real}",
            f"/heat/{tid}",
            "/heat/",
            "/heat",
        ]:
            status, body = request(server, "GET", path)
            assert 400 <= status < 500, path
            assert b"secret" not in body and b"video_fps" not in body and not body.startswith(b"\x89PNG"), path
        assert explain.calls == 0  # the model never saw any of them
        # a crop swapped for a link out of the run after the server started is not explained either
        crop = run_dir / "crops" / str(tid) / real
        crop.unlink()
        crop.symlink_to(outside)
        assert request(server, "GET", f"/heat/{tid}/{real}")[0] == 404
        crop.unlink()
        crop.write_bytes(before[f"crops/{tid}/{real}"])
        assert request(server, "GET", f"/heat/{tid}/{real}")[0] == 200
    assert snapshot(run_dir) == before


def test_heat_cache_is_bounded_and_model_errors_are_answered(run_dir):
    calls = []

    def fake(image):
        calls.append(image.shape)
        return Explanation(0.25, "normal", b"x" * 100)

    cache = HeatCache(fake, entries=2, max_bytes=250)
    for key in ("a", "b", "a", "c", "a"):
        cache.get((key,), lambda: np.zeros((4, 4, 3), np.uint8))
    assert len(calls) == 3 and len(cache) == 2  # a, b, c made; b dropped (least recently used)
    cache.get(("b",), lambda: np.zeros((4, 4, 3), np.uint8))
    assert len(calls) == 4
    cache = HeatCache(fake, entries=10, max_bytes=250)
    for key in "abcd":
        cache.get((key,), lambda: np.zeros((4, 4, 3), np.uint8))
    assert len(cache) == 2  # 250 bytes hold two

    def broken(image):
        raise ValueError("model exploded")

    tid = with_crops(run_dir)[0]
    name = sorted((run_dir / "crops" / str(tid)).glob("*.jpg"))[0].name
    with serving(run_dir, explain=broken) as server:
        status, body = request(server, "GET", f"/heat/{tid}/{name}")
        assert status == 500 and "model exploded" in json.loads(body)["error"]
        assert request(server, "GET", f"/crops/{tid}/{name}")[0] == 200  # the page goes on


def test_old_run_with_png_crops(run_dir):
    """A run from before output.crop_format (PNG crops) is listed and served as PNG."""
    jpgs = sorted(p.relative_to(run_dir).with_suffix("").as_posix() for p in (run_dir / "crops").rglob("*.jpg"))
    as_old_png_run(run_dir)
    with serving(run_dir) as server:
        with urllib.request.urlopen(server.url + "api/objects", timeout=5) as r:
            data = json.load(r)
        urls = [u for o in data["objects"] for u in o["crops"]]
        assert sorted(u.lstrip("/").removesuffix(".png") for u in urls) == jpgs
        assert all(u.endswith(".png") for u in urls)
        with urllib.request.urlopen(server.url + urls[0].lstrip("/"), timeout=5) as r:
            assert r.headers["Content-Type"] == "image/png" and r.read(8) == b"\x89PNG\r\n\x1a\n"
        assert request(server, "GET", urls[0][:-4] + ".jpg")[0] == 404


def test_crops_of_both_formats_in_frame_order(run_dir):
    """.jpg, .jpeg and .png crops side by side (runs of both kinds copied together) are listed by
    frame, each served with its own content type."""
    tid = with_crops(run_dir)[0]
    folder = run_dir / "crops" / str(tid)
    first = sorted(folder.glob("*.jpg"))[0]
    frame = int(first.stem)
    (folder / f"{frame + 1:06d}.jpeg").write_bytes(first.read_bytes())
    import cv2

    cv2.imwrite(str(folder / f"{frame + 2:06d}.png"), cv2.imread(str(first)))
    with serving(run_dir) as server:
        obj = next(o for o in server.store.snapshot()["objects"] if o["track_id"] == tid)
        names = [u.rsplit("/", 1)[1] for u in obj["crops"]]
        assert names[:3] == [first.name, f"{frame + 1:06d}.jpeg", f"{frame + 2:06d}.png"]
        assert [int(n.split(".")[0]) for n in names] == sorted(int(n.split(".")[0]) for n in names)
        for name, ctype in zip(names[:3], ("image/jpeg", "image/jpeg", "image/png")):
            with urllib.request.urlopen(f"{server.url}crops/{tid}/{name}", timeout=5) as r:
                assert r.headers["Content-Type"] == ctype, name


def test_user_labels_loaded_bad_rows_warned_and_kept(run_dir):
    ids = object_ids(run_dir)
    (run_dir / "labels.csv").write_text(
        "\ufeffTrack_ID,Label,note\n"
        f"{ids[0]},normal,first\n"
        f"{ids[1]}, Anomaly ,\n"
        f"{ids[2]},broken,chipped?\n"
        "4242,anomaly,from another run\n"
        "x7,normal,\n"
        f"{ids[3]},unknown,\n"
        "\n"
    )
    store = LabelStore(run_dir)
    assert store.labels == {ids[0]: "normal", ids[1]: "anomaly"}
    text = "\n".join(store.warnings)
    assert "'broken'" in text and "4242" in text and "'x7'" in text and len(store.warnings) == 3
    with serving(run_dir) as server:
        assert post_label(server, ids[2], "anomaly")[0] == 200  # replaces the bad row, keeps its note
        assert post_label(server, ids[4], "normal")[0] == 200
    rows = list(csv.reader((run_dir / "labels.csv").open(newline="")))
    assert rows == [
        ["track_id", "label", "note"],
        [str(ids[0]), "normal", "first"],
        [str(ids[1]), "anomaly", ""],
        [str(ids[2]), "anomaly", "chipped?"],
        [str(ids[4]), "normal", ""],
        ["4242", "anomaly", "from another run"],
        ["x7", "normal", ""],
    ]


def test_unusable_run_folders_exit_1(run_dir, tmp_path, capsys):
    assert main(["label", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err
    a_file = tmp_path / "objects.csv"
    a_file.write_text("track_id\n")
    assert main(["label", str(a_file)]) == 1
    assert "is a file, not a run folder" in capsys.readouterr().err
    no_objects = tmp_path / "no-objects"
    no_objects.mkdir()
    assert main(["label", str(no_objects)]) == 1
    assert "objects.csv is missing" in capsys.readouterr().err
    shutil.rmtree(run_dir / "crops")
    assert main(["label", str(run_dir)]) == 1
    assert "crops is missing" in capsys.readouterr().err
    (run_dir / "crops").mkdir()
    (run_dir / "labels.csv").write_text("id,label,kind\n1,normal,ok\n")  # synth's ground truth, not ours
    assert main(["label", str(run_dir)]) == 1
    assert "track_id,label" in capsys.readouterr().err
    assert (run_dir / "labels.csv").read_text() == "id,label,kind\n1,normal,ok\n"
    with pytest.raises(LabelError):
        LabelStore(run_dir)


def test_command_prints_url_and_stops_on_ctrl_c(run_dir):
    proc = popen_interruptible(
        [sys.executable, "-m", "conveyor_qc", "label", str(run_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert "objects" in first and "left" in first, first
        url = second.split()[1]
        assert url.startswith("http://127.0.0.1:"), second
        ids = object_ids(run_dir)
        req = urllib.request.Request(
            url + f"api/labels/{ids[0]}",
            data=b'{"label": "anomaly"}',
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped: 1 labelled" in out
    assert read_labels(run_dir) == {str(ids[0]): "anomaly"}


def test_bad_model_folder_exits_1_with_the_models_message(run_dir, crop_model, tmp_path, capsys):
    assert main(["label", str(run_dir), "--model", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("conveyor-qc label: error: ") and "no such model folder" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    damaged = tmp_path / "damaged"
    shutil.copytree(crop_model, damaged)
    (damaged / "model.json").write_text("{not json")
    assert main(["label", str(run_dir), "--model", str(damaged)]) == 1
    err = capsys.readouterr().err
    assert "damaged model file" in err and err.count("\n") == 1, err


def test_command_with_model_serves_heat_maps(run_dir, crop_model):
    tid, name, crop = bite(run_dir)
    proc = popen_interruptible(
        [sys.executable, "-m", "conveyor_qc", "label", str(run_dir), "--port", "0", "--model", str(crop_model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        proc.stdout.readline()
        url = proc.stdout.readline().split()[1]
        with urllib.request.urlopen(url + f"heat/{tid}/{name}", timeout=10) as r:
            assert r.headers["Content-Type"] == "image/png" and r.headers["X-Anomaly-Label"] == "anomaly"
            assert decode_png(r.read()).shape == crop.shape
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


# --- the page, in a real browser ----------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("no chromium/chromedriver (apt-get install chromium chromium-driver; `make test` does it)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-extensions",
    ):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    # The driver's path is given: Selenium Manager is never asked to download anything.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def open_page(driver, server):
    driver.get(server.url)
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready === '1'"), what="page ready")


def keys(driver, text: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(text).perform()


def page_labels(driver) -> dict[str, str]:
    return driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('article.obj')]"
        ".map(a => [a.dataset.id, a.dataset.label]))"
    )


def current(driver) -> int:
    return int(driver.execute_script("return document.querySelector('article.obj.current').dataset.id"))


def strip_sources(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('.strip img')].map(i => i.src)")


def test_page_shows_where_the_model_looks(browser, run_dir, model, explain):
    from selenium.webdriver.common.by import By

    ids = object_ids(run_dir)
    tid, name, crop = bite(run_dir)
    verdict, _ = model.explain([crop])[0]
    img = f"#obj-{tid} .strip img[data-crop='/crops/{tid}/{name}']"
    with serving(run_dir, explain=explain) as server:
        open_page(browser, server)
        toggle = browser.find_element(By.ID, "heat")
        assert toggle.is_displayed() and toggle.get_attribute("aria-pressed") == "false"
        assert not browser.find_element(By.ID, "heat-legend").is_displayed()
        assert all("/crops/" in src for src in strip_sources(browser))

        keys(browser, "h")  # every crop swapped for its heat map, each with the model's score
        assert toggle.get_attribute("aria-pressed") == "true"
        assert browser.find_element(By.ID, "heat-legend").is_displayed()
        assert all("/heat/" in src for src in strip_sources(browser))
        browser.execute_script(f"document.querySelector({img!r}).scrollIntoView()")
        shown = wait_for(
            lambda: browser.execute_script(
                f"const i = document.querySelector({img!r}); return i.complete && i.naturalWidth"
            ),
            what="heat map loaded",
        )
        assert shown == crop.shape[1]  # a picture the crop's size really came
        score = browser.find_element(By.CSS_SELECTOR, f"{img} + figcaption .score")
        wait_for(lambda: score.text, what="score shown")
        assert score.text == f"{verdict.score:.2f}", score.text
        assert score.get_attribute("data-label") == "anomaly" and score.is_displayed()
        # the picture is the one the server makes for that crop
        src = browser.find_element(By.CSS_SELECTOR, img).get_attribute("src")
        with urllib.request.urlopen(src, timeout=5) as r:
            assert decode_png(r.read()).shape == crop.shape

        toggle.click()  # and back: the crops themselves, no scores
        assert toggle.get_attribute("aria-pressed") == "false"
        assert all("/crops/" in src for src in strip_sources(browser))
        assert not score.is_displayed()
        keys(browser, "h")
        assert all("/heat/" in src for src in strip_sources(browser))
        wait_for(lambda: score.text, what="score shown again")

        # labelling works as ever while the heat maps show
        keys(browser, "n")
        wait_for(lambda: read_labels(run_dir) == {str(ids[0]): "normal"}, what="labels.csv after N")
        assert current(browser) == ids[1]
        browser.find_element(By.CSS_SELECTOR, f"#obj-{ids[2]} button.mark.anomaly").click()
        wait_for(lambda: read_labels(run_dir).get(str(ids[2])) == "anomaly", what="labels.csv after a click")


def test_page_labels_with_keys_and_clicks_and_keeps_them(browser, run_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    ids = object_ids(run_dir)
    n = len(ids)
    with serving(run_dir) as server:
        open_page(browser, server)
        assert current(browser) == ids[0]
        assert browser.find_element(By.ID, "counter").text.startswith(f"{n} of {n} left")
        assert len(browser.find_elements(By.CSS_SELECTOR, "article.obj")) == n
        strip = browser.find_elements(By.CSS_SELECTOR, f"#obj-{with_crops(run_dir)[0]} .strip img")
        assert 1 <= len(strip) <= 8

        keys(browser, "n")  # normal, and on to the next
        wait_for(lambda: read_labels(run_dir) == {str(ids[0]): "normal"}, what="labels.csv after N")
        assert current(browser) == ids[1]
        keys(browser, "a")
        wait_for(lambda: read_labels(run_dir).get(str(ids[1])) == "anomaly", what="labels.csv after A")
        keys(browser, Keys.ARROW_DOWN + "j" + "k" + Keys.ARROW_UP)  # to ids[4] and back to ids[2]
        assert current(browser) == ids[2]
        keys(browser, "a")
        wait_for(lambda: read_labels(run_dir).get(str(ids[2])) == "anomaly", what="labels.csv after A")
        keys(browser, Keys.ARROW_UP + Keys.ARROW_UP)  # back to ids[1]: clear it
        assert current(browser) == ids[1]
        keys(browser, "u")
        wait_for(lambda: str(ids[1]) not in read_labels(run_dir), what="labels.csv after U")
        keys(browser, "a" + Keys.ARROW_UP + Keys.ARROW_UP + Keys.BACK_SPACE)  # ids[1] anomaly; ids[0] cleared
        wait_for(
            lambda: read_labels(run_dir) == {str(ids[1]): "anomaly", str(ids[2]): "anomaly"},
            what="labels.csv after Backspace",
        )
        keys(browser, "n")  # ids[0] normal again
        wait_for(lambda: read_labels(run_dir).get(str(ids[0])) == "normal", what="labels.csv after N")
        # clicks: the Normal button of ids[4], then the same button again clears it
        button = browser.find_element(By.CSS_SELECTOR, f"#obj-{ids[4]} button.mark.normal")
        button.click()
        wait_for(lambda: read_labels(run_dir).get(str(ids[4])) == "normal", what="labels.csv after a click")
        assert button.get_attribute("aria-pressed") == "true"
        button.click()
        wait_for(lambda: str(ids[4]) not in read_labels(run_dir), what="labels.csv after a second click")
        browser.find_element(By.CSS_SELECTOR, f"#obj-{ids[5]} button.mark.anomaly").click()
        want = {str(ids[0]): "normal", str(ids[1]): "anomaly", str(ids[2]): "anomaly", str(ids[5]): "anomaly"}
        wait_for(lambda: read_labels(run_dir) == want, what="labels.csv after a click")
        wait_for(lambda: browser.find_element(By.ID, "counter").text.startswith(f"{n - 4} of {n} left"), what="counter")

        # the filter: only unlabelled objects
        keys(browser, Keys.HOME + "f")
        shown = [
            int(e.get_attribute("data-id"))
            for e in browser.find_elements(By.CSS_SELECTOR, "article.obj")
            if e.is_displayed()
        ]
        assert shown == [t for t in ids if str(t) not in want]
        keys(browser, "f")

        browser.refresh()
        wait_for(lambda: browser.execute_script("return document.body.dataset.ready === '1'"), what="reload")
        assert {k: v for k, v in page_labels(browser).items() if v} == want
        assert current(browser) == ids[3]  # the first one not labelled yet
        assert browser.find_element(By.ID, "counter").text.startswith(f"{n - 4} of {n} left")
    assert read_labels(run_dir) == want

    # the server killed and started again: still there
    with serving(run_dir) as server:
        open_page(browser, server)
        assert {k: v for k, v in page_labels(browser).items() if v} == want
        assert browser.find_element(By.CSS_SELECTOR, f"#obj-{ids[1]} .badge").text.lower() == "anomaly"

        # a save that fails (server gone) is shown, and the page keeps the saved label
        server.shutdown()
        server.server_close()
        keys(browser, "a")
        error = wait_for(lambda: browser.find_element(By.ID, "error").text, what="save error shown")
        assert "not saved" in error
        wait_for(lambda: page_labels(browser)[str(ids[3])] == "", what="label reverted")
    assert read_labels(run_dir) == want


def test_page_shows_labels_the_user_brought(browser, run_dir):
    from selenium.webdriver.common.by import By

    ids = object_ids(run_dir)
    (run_dir / "labels.csv").write_text(
        f"track_id,label\n{ids[0]},anomaly\n{ids[2]},normal\n4242,normal\n{ids[1]},maybe\n"
    )
    with serving(run_dir, order=None) as server:
        open_page(browser, server)
        labels = page_labels(browser)
        assert labels[str(ids[0])] == "anomaly" and labels[str(ids[2])] == "normal" and labels[str(ids[1])] == ""
        # no model: no "show where" toggle, and H does nothing; no ordering: no order toggle, no guesses
        assert not browser.find_element(By.ID, "heat").is_displayed()
        assert not browser.find_element(By.ID, "heat-key").is_displayed()
        assert not browser.find_element(By.ID, "order").is_displayed()
        assert not browser.find_element(By.ID, "model").is_displayed()
        assert request(server, "GET", "/api/order")[0] == 404
        keys(browser, "h" + "o")
        assert all("/crops/" in src for src in strip_sources(browser)) and strip_sources(browser)
        warnings = browser.find_element(By.ID, "warnings")
        assert warnings.is_displayed() and "2 warnings" in warnings.text
        assert current(browser) == ids[1]  # the first one not labelled
        keys(browser, "n")
        wait_for(lambda: read_labels(run_dir).get(str(ids[1])) == "normal", what="labels.csv after N")
        browser.find_element(By.CSS_SELECTOR, f"#obj-{ids[0]} button.mark.normal").click()
        wait_for(lambda: read_labels(run_dir).get(str(ids[0])) == "normal", what="labels.csv after a click")
    assert read_labels(run_dir) == {
        str(ids[0]): "normal",
        str(ids[1]): "normal",
        str(ids[2]): "normal",
        "4242": "normal",
    }


# --- the order the page asks in, and the model's guesses (dataset/asking.py) ----------


@pytest.fixture(scope="module")
def truth_run(make_clip, tmp_path_factory):
    """A run of an 8 s cookies clip (a quarter anomalies) and its true labels, kept out of the run
    folder (the person the tests play answers with them)."""
    from conveyor_qc.evaluation.truth_labels import label_from_truth
    from conveyor_qc.run.job import run_video

    clip = make_clip("cookies", seed=3, seconds=8)
    base = tmp_path_factory.mktemp("label-order")
    run_video(clip.video, base / "run", video=False)
    made = label_from_truth(base / "run", clip.folder)
    with open(made.path, newline="") as fh:
        truth = {int(r["track_id"]): r["label"] for r in csv.DictReader(fh)}
    Path(made.path).unlink()
    assert sum(v == "anomaly" for v in truth.values()) >= 4 and sum(v == "normal" for v in truth.values()) >= 4
    return base / "run", truth


@pytest.fixture
def order_run(truth_run, tmp_path):
    source, truth = truth_run
    shutil.copytree(source, tmp_path / "run")
    return tmp_path / "run", truth


class Gate:
    """An ``ask_order`` that waits for the test to let it through once there are labels (the calls
    with none, the first order and the one that brings the quality flags, pass at once): a retrain
    as slow as the test wants, to show that clicks never wait for one."""

    def __init__(self):
        from conveyor_qc.dataset.active import ask_order

        self._ask_order = ask_order
        self.open = threading.Event()
        self.waiting = threading.Event()  # a retrain is held at the gate now
        self.calls = 0

    def __call__(self, features, labels, *args, **kwargs):
        self.calls += 1
        if labels:
            self.waiting.set()
            assert self.open.wait(30), "the test never opened the gate"
            self.waiting.clear()
        return self._ask_order(features, labels, *args, **kwargs)

    def asker(self, store):
        from conveyor_qc.dataset.asking import Asker

        return Asker(store, compute=self)


def order_state(server) -> dict:
    status, body = request(server, "GET", "/api/order")
    assert status == 200, body
    return json.loads(body)


def settled(server) -> dict:
    """The order once it is computed from the labels as they are now (and the quality flags are in)."""
    return wait_for(
        lambda: (s := order_state(server))["state"] == "ready" and not s["pending"] and s["flags"] is not None and s,
        timeout=60,
        what="order",
    )


def valid_labels_csv(run: Path) -> dict[int, str]:
    """labels.csv as a dataset reads it: the header, then one track_id,label row per labelled object
    ({} before the first label is saved)."""
    if not (run / "labels.csv").exists():
        return {}
    rows = list(csv.reader((run / "labels.csv").read_text().splitlines()))
    assert rows[0] == ["track_id", "label"], rows[0]
    ids = object_ids(run)
    out = {}
    for tid, label in rows[1:]:
        assert int(tid) in ids and label in ("normal", "anomaly") and int(tid) not in out, (tid, label)
        out[int(tid)] = label
    return out


def blur_crops(run: Path, track: int) -> None:
    """Every crop of ``track`` out of focus (a 12 px blur on a crop about 3x the frame's scale): an
    object the quality checks flag "blurred"."""
    import cv2

    for p in (run / "crops" / str(track)).glob("*.jpg"):
        assert cv2.imwrite(str(p), cv2.GaussianBlur(cv2.imread(str(p)), (0, 0), 12))


def with_flags(server) -> dict:
    return wait_for(lambda: (s := order_state(server))["flags"] is not None and s, timeout=60, what="quality flags")


def test_order_api_asks_the_unusual_first_then_what_teaches_most(order_run):
    from conveyor_qc.dataset.quality import check_run

    run, truth = order_run
    ids = object_ids(run)
    soft = [t for t in with_crops(run) if truth.get(t) == "normal"][2]
    blur_crops(run, soft)
    with serving(run, order="active") as server:
        flags = with_flags(server)["flags"]  # the quality checks' flags come with the order
        assert "blurred" in flags[str(soft)]
        assert flags == {str(o.name): dict(o.reasons) for o in check_run(run).flagged()}
        first = settled(server)
        assert first["basis"] == "unusual" and first["guesses"] == {} and first["quality"] is None
        assert first["need"] == {"normal": 3, "anomaly": 3} and first["labelled"] == 0
        assert sorted(first["ask"]) == ids  # every object, once
        asked = [t for t in first["ask"] if t in truth]
        share = sum(truth[t] == "anomaly" for t in asked) / len(asked)
        early = asked[: max(1, len(asked) // 5)]
        assert sum(truth[t] == "anomaly" for t in early) / len(early) > share  # the unusual come first

        given = {}
        for kind in ("anomaly", "normal"):
            for t in [t for t in first["ask"] if truth.get(t) == kind][:3]:
                assert post_label(server, t, kind)[0] == 200
                given[t] = kind
        after = settled(server)
        assert after["version"] > first["version"] and after["labels_version"] == server.store.version == 6
        assert after["basis"] == "model" and after["labelled"] == 6 and after["need"] == {"normal": 0, "anomaly": 0}
        assert sorted(after["ask"]) == sorted(set(ids) - set(given))
        assert after["ask"] != [t for t in first["ask"] if t not in given]  # asked by what would teach most now
        with_crop = set(with_crops(run))
        assert {int(t) for t in after["guesses"]} == with_crop
        assert all(g["label"] in ("normal", "anomaly") and 0 <= g["score"] <= 1 for g in after["guesses"].values())
        assert after["quality"] is None or 0 <= after["quality"] <= 1
    assert valid_labels_csv(run) == given


def test_labels_are_saved_at_once_while_the_model_retrains(order_run):
    run, truth = order_run
    gate = Gate()
    with serving(run, order="active", asker=gate.asker) as server:
        first = settled(server)
        asked = first["ask"][:8]
        assert post_label(server, asked[0], truth[asked[0]])[0] == 200
        wait_for(gate.waiting.is_set, timeout=30, what="a retrain under way")
        for t in asked[1:]:  # each answered and saved while the retrain is held
            status, body = post_label(server, t, truth[t])
            assert status == 200 and json.loads(body)["label"] == truth[t]
            assert valid_labels_csv(run)[t] == truth[t]
        assert gate.waiting.is_set()
        held = order_state(server)
        assert held["pending"] and held["labels_version"] == 0 and held["version"] == first["version"]
        gate.open.set()
        done = settled(server)  # the labels that came during the retrain are not lost
        assert done["labels_version"] == server.store.version == len(asked)
        assert done["labelled"] == len(asked) and not set(asked) & set(done["ask"])
    assert valid_labels_csv(run) == {t: truth[t] for t in asked}


def test_unreadable_crops_fall_back_to_passage_order_and_labelling_goes_on(order_run):
    run, _ = order_run
    for p in (run / "crops").rglob("*.jpg"):
        p.write_bytes(b"not a jpeg")
    ids = object_ids(run)
    with serving(run, order="active") as server:
        failed = wait_for(lambda: (s := order_state(server))["state"] == "failed" and s, timeout=30, what="failure")
        assert "cannot read the crops' figures" in failed["error"] and failed["ask"] == []
        assert post_label(server, ids[0], "normal")[0] == 200
    assert valid_labels_csv(run) == {ids[0]: "normal"}


def card_order(driver) -> list[int]:
    return driver.execute_script("return [...document.querySelectorAll('article.obj')].map(a => +a.dataset.id)")


def model_line(driver) -> tuple[str, str]:
    return driver.execute_script(
        "const m = document.getElementById('model'); return [m.dataset.basis || '', m.textContent]"
    )


def test_page_asks_the_most_useful_first_guesses_and_never_waits(browser, order_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run, truth = order_run
    soft = [t for t in with_crops(run) if truth.get(t) == "normal"][2]
    blur_crops(run, soft)
    gate = Gate()
    with serving(run, order="active", asker=gate.asker) as server:
        open_page(browser, server)
        wait_for(lambda: model_line(browser)[0] == "unusual", timeout=60, what="the first order")
        # the object the quality checks flag says so on its card, and the header counts it
        flag = wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, f"#obj-{soft} .flag[data-flag='blurred']"),
            timeout=60,
            what="the blurred flag shown",
        )[0]
        assert flag.text == "blurred" and flag.get_attribute("title")
        assert "flagged" in model_line(browser)[1]
        first = order_state(server)
        assert card_order(browser) == first["ask"]  # no label yet: the whole page in the order asked
        assert current(browser) == first["ask"][0]
        assert "most unusual" in model_line(browser)[1]
        assert browser.find_element(By.ID, "order").get_attribute("aria-pressed") == "true"

        # a person answers what is asked until the model has 3 of each; the retrain is held at the
        # gate all along, and every key is saved at once all the same
        given: dict[int, str] = {}
        while min(sum(v == k for v in given.values()) for k in ("normal", "anomaly")) < 3:
            t = current(browser)
            keys(browser, "a" if truth[t] == "anomaly" else "n")
            given[t] = truth[t]
            wait_for(lambda: valid_labels_csv(run) == given, what="labels.csv after a key")
            assert current(browser) != t  # on to the next question
        wait_for(gate.waiting.is_set, timeout=30, what="the retrain held at the gate")
        assert model_line(browser)[0] == "unusual"  # the page still shows the first order
        assert card_order(browser)[: len(given)] == list(given)  # asked in the first order meanwhile

        before = card_order(browser)
        gate.open.set()
        wait_for(lambda: model_line(browser)[0] == "model", timeout=30, what="the retrained order")
        now = settled(server)
        wait_for(
            lambda: browser.execute_script("return document.body.dataset.orderVersion") == str(now["version"]),
            what="the page showing the last order",
        )
        assert now["labelled"] == len(given)
        assert "estimated quality" in model_line(browser)[1]
        cards = card_order(browser)
        here = current(browser)  # the selected object stays; what is left below it is in the new order
        below = cards[cards.index(here) + 1 :]
        assert below == [t for t in now["ask"] if t != here]
        assert below != [t for t in before if t in below]  # which is not the unusual-first one
        assert cards[: len(given)] == before[: len(given)]  # what was answered stays where it was
        # every object shows the model's guess
        shown = browser.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('article.obj')]"
            ".map(a => [a.dataset.id, a.querySelector('.guess').dataset.guess]))"
        )
        assert {int(t): g for t, g in shown.items() if g} == {int(t): g["label"] for t, g in now["guesses"].items()}

        # Enter: as the model guesses
        t = current(browser)
        keys(browser, Keys.ENTER)
        given[t] = now["guesses"][str(t)]["label"]
        wait_for(lambda: valid_labels_csv(run) == given, what="labels.csv after Enter")

        # O: as they passed, and back
        keys(browser, "o")
        assert card_order(browser) == sorted(cards)
        assert browser.find_element(By.ID, "order").get_attribute("aria-pressed") == "false"
        keys(browser, "o")
        assert browser.find_element(By.ID, "order").get_attribute("aria-pressed") == "true"
    assert valid_labels_csv(run) == given
