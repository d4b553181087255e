"""What a run tells of its verdicts (issue 19, "the first hour"): without a model its objects are
"not judged", never "0 anomalies"; and what the annotated video shows: readable numbers on labels,
a counting line that can be seen at count.line = 1.0, boxes in the documented colours."""

from __future__ import annotations

import functools
import http.server
import inspect
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from fractions import Fraction

import cv2
import numpy as np
import pytest

from conftest import REPO
from conftest import run_cli as cli
from conveyor_qc.cli.run import verdicts
from conveyor_qc.config import Config, ConfigError
from conveyor_qc.evaluation.tune import Scores
from conveyor_qc.run import encoder
from conveyor_qc.run.outputs import LABEL_COLOURS, LINE_COLOUR, RunWriter, count_line_segment, draw_tracks
from conveyor_qc.run.pipeline import Tracks
from test_model import photo_model  # noqa: F401  (the fixture: a model trained on the real cookie photos)

#: The documented colours (docs/anomaly.md, docs/outputs.md), RGB: Okabe and Ito's blue,
#: vermillion and yellow.
DOCUMENTED = {"normal": (0, 114, 178), "anomaly": (213, 94, 0), "unknown": (240, 228, 66)}
BGR = {k: v[::-1] for k, v in DOCUMENTED.items()}


@pytest.fixture(scope="module")
def clip(make_clip):
    return make_clip("cookies", seed=5, seconds=4)


def near(image: np.ndarray, bgr, tolerance: int = 0) -> np.ndarray:
    """Where ``image`` has the colour ``bgr`` (within ``tolerance`` per channel, for encoded video)."""
    return (np.abs(image.astype(int) - np.array(bgr)) <= tolerance).all(axis=2)


def video_frames(path, every: int = 10) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


def banner(frame: np.ndarray) -> np.ndarray:
    """The running counts' corner of a 640x360 frame."""
    return frame[8:40, 8:420]


# --- point 3: "not judged" without a model --------------------------------------------------------


def test_a_run_without_a_model_says_its_objects_were_not_judged(clip, tmp_path):
    out = tmp_path / "run"
    r = cli("run", clip.video, "--out", out, "--no-crops", "-q")
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["objects"] > 0
    assert f"{s['objects']} objects (not judged: no --model), {s['counts']['total']} counted at the line" in r.stdout
    assert "anomalies" not in r.stdout
    # summary.json keeps its keys and says it: no model, every object unknown
    assert s["model"] is None
    assert (s["anomalies"], s["normal"], s["unknown"]) == (0, 0, s["objects"])
    assert s["counts"]["unknown"] == s["counts"]["total"] > 0
    assert s["counts"]["normal"] == s["counts"]["anomaly"] == 0
    # the video's banner: the yellow square of "not judged", never the colours of normal or anomaly
    frames = video_frames(out / "annotated.mp4")
    assert all(near(banner(f), BGR["unknown"], 40).sum() >= 50 for f in frames)
    assert not any(near(banner(f), BGR[k], 40).sum() >= 20 for f in frames for k in ("normal", "anomaly"))


def test_a_run_with_a_model_tells_its_anomalies_as_before(clip, photo_model, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    r = cli("run", clip.video, "--out", out, "--no-crops", "-q", "--model", photo_model[0])
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["model"] is not None and s["anomalies"] + s["normal"] > 0
    unknown = f", {s['unknown']} unknown" if s["unknown"] else ""  # objects never wholly in view
    assert f"{s['objects']} objects ({s['anomalies']} anomalies{unknown}), {s['counts']['total']} counted" in r.stdout
    assert "not judged" not in r.stdout
    # the banner, once objects are counted, shows normal and anomaly with their colours
    last = video_frames(out / "annotated.mp4")[-1]
    assert near(banner(last), BGR["normal"], 40).sum() >= 50
    assert near(banner(last), BGR["anomaly"], 40).sum() >= 50


def test_summary_lines_of_recovered_and_judged_runs():
    # recover: a summary rebuilt from a killed run's journal has no "model"; its labels tell
    assert verdicts({"objects": 4, "anomalies": 0, "normal": 0, "unknown": 4}) == "(not judged: no --model)"
    assert verdicts({"objects": 4, "anomalies": 1, "normal": 3, "unknown": 0}) == "(1 anomalies)"
    judged = {"model": {"path": "m"}, "objects": 5, "anomalies": 2, "normal": 2, "unknown": 1}
    assert verdicts(judged) == "(2 anomalies, 1 unknown)"
    assert verdicts({**judged, "model": None, "anomalies": 0, "normal": 0, "unknown": 5}) == "(not judged: no --model)"


def test_a_batch_without_a_model_says_not_judged(clip, tmp_path):
    r = cli("batch", clip.video, "--out", tmp_path / "b", "--workers", 1)
    assert r.returncode == 0, r.stderr
    assert re.search(r"; \d+ objects \(not judged: no --model\) in \d+ frames", r.stdout), r.stdout
    # and the line of each video as it finishes
    assert re.search(r"\[1/1\] \S+: \d+ objects \(not judged\), \d+ frames at", r.stderr + r.stdout), r.stderr


def test_tune_says_found_not_counted():
    """In `run`, "counted" means crossed the counting line; tune's tracks on objects are "found"."""
    text = Scores(f1=0.9, precision=0.9, recall=0.9, counted=38, objects=40).describe()
    assert "(38 found / 40 objects)" in text and "counted" not in text


# --- point 4: the annotated video ----------------------------------------------------------------


def draw(direction: str = "left_to_right", labels=None, judged=True) -> np.ndarray:
    """A 640x360 canvas (the default half-size video of a 1280x720 input) drawn as run draws it:
    two overlapping boxes (ids 7 and 12), one at the frame's top edge (id 30) and one under the
    running counts (id 40), the counting line at 1.0."""
    frame = np.full((360, 640, 3), 128, np.uint8)
    tracks = Tracks(
        frame_index=0,
        ids=np.array([7, 12, 30, 40], np.int32),
        boxes=np.array(
            [[400, 300, 100, 140], [480, 360, 160, 140], [1100, 0, 120, 100], [100, 0, 120, 100]], np.float32
        ),
        whole=np.array([True, True, False, False]),
        count=4,
    )
    line = count_line_segment((1280, 720), 1.0, direction)
    labels = {7: "anomaly", 12: "normal"} if labels is None else labels
    counts = {"total": 9, "normal": 5, "anomaly": 3}
    draw_tracks(frame, tracks, labels, counts, line=line, scale=0.5, judged=judged)
    return frame


def test_the_colours_are_the_documented_ones():
    assert {k: tuple(v) for k, v in LABEL_COLOURS.items()} == BGR
    said = {
        "docs/anomaly.md": ("drawn blue (normal) or vermillion", "yellow (unknown)"),
        "docs/outputs.md": ("**blue** normal", "**vermillion** anomaly", "**yellow** unknown"),
    }
    for doc, words in said.items():
        text = " ".join((REPO / doc).read_text(encoding="utf-8").split())
        for w in words:
            assert w in text, (doc, w)


@pytest.mark.parametrize(
    ("direction", "where"),
    [
        ("left_to_right", (slice(None), slice(-4, None))),  # the last columns
        ("right_to_left", (slice(None), slice(0, 4))),  # the first columns
        ("top_to_bottom", (slice(-4, None), slice(None))),  # the last rows
    ],
)
def test_the_counting_line_at_the_exit_edge_is_seen(direction, where):
    frame = draw(direction)
    on_line = near(frame[where], LINE_COLOUR)
    along = on_line.any(axis=1 if direction != "top_to_bottom" else 0)
    assert along.mean() > 0.8, along.mean()  # over most of the frame's height (width)
    assert on_line.sum(axis=1 if direction != "top_to_bottom" else 0).max() >= 3  # a few pixels thick
    # and its "count" tag: a block of the line's colour away from the edge
    assert near(frame, LINE_COLOUR).sum() > on_line.sum() + 300


def test_boxes_and_numbers_on_labels_where_boxes_overlap():
    frame = draw()
    # box 7 (anomaly) from (200, 150) to (250, 220), box 12 (normal) from (240, 180) to (320, 250)
    anomaly, normal = near(frame, BGR["anomaly"]), near(frame, BGR["normal"])
    assert anomaly[150:222, 196:204].sum() > 200  # box 7's left edge, in the anomaly colour, thick
    assert normal[200:250, 318:323].sum() > 40  # box 12's right edge
    # each number on a filled label of its box's colour, above the box's top-left corner
    for (x, y), colour, ink in (((200, 150), "anomaly", (0, 0, 0)), ((240, 180), "normal", (255, 255, 255))):
        label = frame[y - 26 : y, x - 4 : x + 30]
        fill = near(label, BGR[colour])
        assert fill.sum() > 150, (colour, fill.sum())
        rows = np.flatnonzero(near(label, ink, 60).any(axis=1))
        assert rows.size and rows[-1] - rows[0] + 1 >= 12, rows  # digits at least 12 px high
    # box 30 touches the top edge: its label is inside the frame, just under the box's top
    assert near(frame[0:24, 546:585], BGR["unknown"]).sum() > 150
    # box 40 is under the running counts (8 px from the top, 32 high): its label just below them
    assert near(frame[41:64, 46:80], BGR["unknown"]).sum() > 150
    # the label of box 12 lies across box 7's right edge (x 250): drawn after every box, it hides it
    assert near(frame[185:215, 249:252], BGR["anomaly"]).all()  # the edge, below the label
    assert near(frame[160:176, 242:262], BGR["normal"]).sum() > 150
    assert not near(frame[160:176, 248:253], BGR["anomaly"]).any()


def test_the_banner_without_verdicts_says_not_judged():
    judged = banner(draw())
    assert near(judged, BGR["normal"]).sum() > 50 and near(judged, BGR["anomaly"]).sum() > 50
    assert near(judged, BGR["unknown"]).sum() > 50  # 9 counted, 8 with a verdict: "unknown: 1"
    unjudged = banner(draw(labels={}, judged=False))
    assert near(unjudged, BGR["unknown"]).sum() > 50
    assert not near(unjudged, BGR["normal"]).any() and not near(unjudged, BGR["anomaly"]).any()
    # nothing in view, nothing judged yet: the same banner
    guessed = np.full((360, 640, 3), 128, np.uint8)
    empty = Tracks(
        frame_index=0, ids=np.zeros(0, np.int32), boxes=np.zeros((0, 4), np.float32), whole=np.zeros(0, bool), count=0
    )
    draw_tracks(guessed, empty, {}, {"total": 9, "normal": 0, "anomaly": 0}, scale=0.5, judged=False)
    assert np.array_equal(banner(guessed), unjudged)


# --- issue 20 item 5: annotated.mp4 in H.264 -------------------------------------------------------


def mp4_boxes(path) -> list[bytes]:
    """The top-level boxes of an MP4 file, in order (``ftyp``, ``moov``, ``mdat``...)."""
    data, kinds, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        kinds.append(kind)
        if size < 8:
            break
        at += size
    return kinds


def probe(path) -> dict:
    """What PyAV reads of the video: its codec, pixel format, frames (counted by decoding) and rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "rate": stream.average_rate,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "colorspace": int(stream.codec_context.colorspace),
        }
        info["frames"] = sum(1 for _ in container.decode(stream))
    return info


def cv2_frames(path) -> tuple[int, float, tuple[int, ...] | None]:
    cap = cv2.VideoCapture(str(path))
    n, shape = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return n, fps, shape


def encode(path, n: int = 12, fps: float = 30.0, size=(160, 120), **kw) -> encoder.VideoEncoder:
    """``n`` frames (a box moving on grey) through a VideoEncoder; returns it, closed."""
    video = encoder.VideoEncoder(path, fps, size, **kw)
    for i in range(n):
        frame = np.full((size[1], size[0], 3), 128, np.uint8)
        frame[20:60, 4 * i : 4 * i + 40] = BGR["anomaly"]
        video.write(frame)
    video.close()
    return video


@pytest.fixture(scope="module")
def h264_run(clip, tmp_path_factory):
    """A run of the clip with the default settings: annotated.mp4 in H.264."""
    out = tmp_path_factory.mktemp("h264") / "run"
    r = cli("run", clip.video, "--out", out, "--no-crops", "-q")
    assert r.returncode == 0, r.stderr
    assert "mp4v" not in r.stderr  # no fallback here: PyAV and its libx264 are installed
    return out, json.loads((out / "summary.json").read_text())


def test_the_annotated_video_is_h264_with_its_index_first(h264_run):
    out, s = h264_run
    video = out / "annotated.mp4"
    info = probe(video)
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    assert info["size"] == (s["width"] // 2, s["height"] // 2)  # output.video_scale 0.5
    assert info["frames"] == s["frames"]
    assert info["rate"] == encoder.frame_rate(s["video_fps"])
    assert info["colorspace"] == 6  # tagged BT.601 (SMPTE 170M), as it was converted
    # faststart: the index before the media, so a browser starts playing before the end
    boxes = mp4_boxes(video)
    assert boxes[0] == b"ftyp" and boxes.index(b"moov") < boxes.index(b"mdat"), boxes
    # OpenCV (the package's own reader) decodes it too, every frame
    n, fps, shape = cv2_frames(video)
    assert n == s["frames"] and shape == (s["height"] // 2, s["width"] // 2, 3)
    assert fps == pytest.approx(s["video_fps"], rel=1e-3)


@pytest.fixture(scope="module")
def chromium():
    chromium, driver_path = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")
    if not (os.path.exists(chromium) and driver_path):
        pytest.skip("no chromium/chromedriver (apt-get install chromium chromium-driver; `make test` does it)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"):
        opts.add_argument(arg)
    opts.binary_location = chromium
    # The driver's path is given: Selenium Manager is never asked to download anything.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


#: Plays a video muted in a <video> element; its size, duration and time once it has played a while,
#: or the MediaError's code (4: MEDIA_ERR_SRC_NOT_SUPPORTED).
PLAY = """
const done = arguments[arguments.length - 1];
const v = document.createElement('video');
v.muted = true;
v.onerror = () => done({error: v.error ? v.error.code : -1});
v.onplaying = () => setTimeout(() => done({size: [v.videoWidth, v.videoHeight], duration: v.duration,
                                           time: v.currentTime}), 400);
v.src = arguments[0];
document.body.appendChild(v);
v.play().catch(() => {});
"""


def test_a_browser_plays_it_and_starts_before_the_end(h264_run, chromium, tmp_path):
    """Chromium plays annotated.mp4 from an HTTP server, and plays the first half of the file alone
    (its index comes first: a browser starts before the rest has come); mp4v it refuses."""
    out, s = h264_run
    data = (out / "annotated.mp4").read_bytes()
    (tmp_path / "annotated.mp4").write_bytes(data)
    (tmp_path / "first-half.mp4").write_bytes(data[: len(data) // 2])
    encode(tmp_path / "mp4v.mp4", codec="mp4v")
    (tmp_path / "index.html").write_text("<!doctype html><title>video</title><body></body>")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        chromium.get(url + "index.html")
        duration = s["frames"] / s["video_fps"]
        for name in ("annotated.mp4", "first-half.mp4"):
            played = chromium.execute_async_script(PLAY, url + name)
            assert "error" not in played, (name, played)
            assert played["size"] == [s["width"] // 2, s["height"] // 2], (name, played)
            assert played["duration"] == pytest.approx(duration, abs=0.1), (name, played)
            assert played["time"] > 0, (name, played)
        assert chromium.execute_async_script(PLAY, url + "mp4v.mp4") == {"error": 4}
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("fps", [30000 / 1001, 29.97, 60000 / 1001, 59.94, 25.0, 12.5])
def test_h264_at_odd_frame_rates(fps, tmp_path):
    video = encode(tmp_path / "v.mp4", n=45, fps=fps, size=(162, 90))
    assert video.codec == "h264"
    info = probe(video.path)
    assert info["frames"] == 45 and info["size"] == (162, 90)
    assert info["rate"] == encoder.frame_rate(fps)
    assert float(info["rate"]) == pytest.approx(fps, rel=1e-4)
    n, cv2_fps, _ = cv2_frames(video.path)
    assert n == 45 and cv2_fps == pytest.approx(fps, rel=1e-3)


def test_frame_rates_as_fractions():
    assert encoder.frame_rate(29.97) == encoder.frame_rate(30000 / 1001) == Fraction(30000, 1001)
    assert encoder.frame_rate(59.94) == Fraction(60000, 1001)
    assert encoder.frame_rate(23.976) == Fraction(24000, 1001)
    assert encoder.frame_rate(30.0) == 30 and encoder.frame_rate(12.5) == Fraction(25, 2)
    with pytest.raises(ValueError):
        encoder.frame_rate(0.0)


def test_odd_frame_sizes_are_made_even(tmp_path):
    video = encode(tmp_path / "v.mp4", size=(161, 121))
    assert video.size == (160, 120) and probe(video.path)["size"] == (160, 120)
    half = encode(tmp_path / "h.mp4", size=(166, 98), scale=0.5)  # 83x49 made even
    assert probe(half.path)["size"] == half.size == (82, 48)


@pytest.mark.parametrize("height", [90, 92, 2, 4])
def test_every_row_where_it_was_at_any_even_height(height, tmp_path):
    """A band of colour along the last rows comes back there, and only there (PyAV's wrapping of
    the converted frame, without a copy, took heights in multiples of 4 only)."""
    video = encoder.VideoEncoder(tmp_path / "v.mp4", 30.0, (64, height))
    frame = np.full((height, 64, 3), 128, np.uint8)
    band = max(2, height // 4 // 2 * 2)
    frame[height - band :] = BGR["normal"]
    for _ in range(3):
        video.write(frame)
    video.close()
    assert probe(video.path)["size"] == (64, height)
    cap = cv2.VideoCapture(str(video.path))
    ok, back = cap.read()
    cap.release()
    assert ok and back.shape == frame.shape
    assert near(back[height - band :, 8:56], BGR["normal"], 16).all()
    assert near(back[: height - band - 2, 8:56], (128, 128, 128), 16).all()


def test_the_colours_survive_h264(tmp_path):
    """The verdicts' colours come back within a few levels (BT.601 both ways), away from edges."""
    video = encode(tmp_path / "v.mp4", n=3)
    cap = cv2.VideoCapture(str(video.path))
    ok, frame = cap.read()
    cap.release()
    assert ok and near(frame[28:52, 8:32], BGR["anomaly"], 12).all()
    assert near(frame[80:110, 60:150], (128, 128, 128), 6).all()


def test_mp4v_when_asked(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger=encoder.__name__):
        video = encode(tmp_path / "v.mp4", codec="mp4v")
    assert video.codec == "mp4v" and not caplog.records
    info = probe(video.path)
    assert (info["codec"], info["frames"]) == ("mpeg4", 12)


@pytest.mark.parametrize("missing", ["pyav", "libx264"])
def test_without_h264_the_video_falls_back_to_mp4v_and_says_so_once(missing, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(encoder, "_told", set())
    with monkeypatch.context() as m:
        if missing == "pyav":
            m.setitem(sys.modules, "av", None)  # `import av` raises ImportError
        else:
            m.setattr(encoder, "H264_ENCODER", "libno264")
        with caplog.at_level(logging.WARNING, logger=encoder.__name__):
            first = encode(tmp_path / "1.mp4")
            second = encode(tmp_path / "2.mp4")
    assert first.codec == second.codec == "mp4v"
    assert probe(first.path)["codec"] == probe(second.path)["codec"] == "mpeg4"
    assert probe(first.path)["frames"] == 12
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 1, told  # once a process, not once a video
    assert "mp4v" in told[0] and "browsers do not play" in told[0]
    assert ("PyAV is not installed" if missing == "pyav" else "no libno264 encoder") in told[0]


@pytest.mark.parametrize("codec", encoder.CODECS)
def test_a_bad_path_is_an_encoder_error_naming_the_file(codec, tmp_path):
    path = tmp_path / "no" / "such" / "folder" / "annotated.mp4"
    with pytest.raises(encoder.EncoderError, match=re.escape(str(path))) as caught:
        encoder.VideoEncoder(path, 30.0, (64, 48), codec=codec)
    assert isinstance(caught.value, OSError)


@pytest.mark.parametrize("codec", encoder.CODECS)
def test_an_encoding_failure_is_raised_by_the_next_write_and_by_close(codec, tmp_path):
    path = tmp_path / "v.mp4"
    video = encoder.VideoEncoder(path, 30.0, (64, 48), codec=codec)

    def broken(frame):
        raise RuntimeError("the disk is on fire")

    video._sink.write = broken  # type: ignore[method-assign]
    frame = np.zeros((48, 64, 3), np.uint8)
    failed = f"encoding {re.escape(str(path))} failed: the disk is on fire"

    def met() -> None:  # the encoding thread has met the failure
        deadline = time.monotonic() + 60
        while video._error is None and time.monotonic() < deadline:
            time.sleep(0.01)

    video.write(frame)
    met()
    with pytest.raises(encoder.EncoderError, match=failed):
        video.write(frame)
    video.write(frame)  # fails again on the thread: close() tells it
    met()
    with pytest.raises(encoder.EncoderError, match=failed):
        video.close()
    assert not video._thread.is_alive()


def test_a_failure_at_close_is_an_encoder_error(tmp_path):
    path = tmp_path / "v.mp4"
    video = encoder.VideoEncoder(path, 30.0, (64, 48))

    def broken():
        raise OSError(28, "No space left on device")

    video._sink.close = broken  # type: ignore[method-assign]
    video.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(encoder.EncoderError, match=f"encoding {re.escape(str(path))} failed: .*No space left"):
        video.close()


def test_abort_leaves_no_thread_and_no_error(tmp_path):
    video = encoder.VideoEncoder(tmp_path / "v.mp4", 30.0, (64, 48))
    for _ in range(8):
        video.write(np.zeros((48, 64, 3), np.uint8))
    video.abort()
    assert not video._thread.is_alive()


def test_the_codec_setting():
    config = Config()
    assert config.output.video_codec == "h264" == encoder.DEFAULT_CODEC
    config.set("output.video_codec", "mp4v")
    assert config.output.video_codec == "mp4v"
    with pytest.raises(ConfigError, match="output.video_codec must be one of h264, mp4v"):
        config.set("output.video_codec", "vp9")


@pytest.mark.skipif(
    "video_codec" not in inspect.signature(RunWriter).parameters,
    reason="RunWriter does not pass output.video_codec to the encoder yet (run/outputs.py, run/job.py)",
)
def test_a_run_writes_mp4v_when_set(clip, tmp_path):
    out = tmp_path / "run"
    r = cli("run", clip.video, "--out", out, "--no-crops", "-q", "--set", "output.video_codec=mp4v")
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    info = probe(out / "annotated.mp4")
    assert (info["codec"], info["frames"]) == ("mpeg4", s["frames"])


# --- the video's frame rate for a fast camera (output.video_max_fps) ------------------------------


def test_a_60_fps_source_makes_a_30_fps_video_of_every_other_frame(clip, tmp_path):
    """The same frames, said to be 60 fps: the video gets every other one at 30 fps (half the
    drawing and encoding), the tracks are the same as at any video rate, and output.video_max_fps
    60 writes them all."""
    fast = tmp_path / "fast.mp4"
    cap = cv2.VideoCapture(str(clip.video))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    out = cv2.VideoWriter(str(fast), cv2.VideoWriter_fourcc(*"mp4v"), 60.0, frames[0].shape[1::-1])
    for f in frames:
        out.write(f)
    out.release()

    runs = {}
    for max_fps in (None, 60):
        folder = tmp_path / f"run-{max_fps}"
        extra = () if max_fps is None else ("--set", f"output.video_max_fps={max_fps}")
        r = cli("run", fast, "--out", folder, "--no-crops", "-q", *extra)
        assert r.returncode == 0, r.stderr
        runs[max_fps] = folder
    s = json.loads((runs[None] / "summary.json").read_text())
    assert s["frames"] == len(frames) and s["video_fps"] == 60.0
    half = probe(runs[None] / "annotated.mp4")
    assert half["rate"] == encoder.frame_rate(30.0) and half["frames"] == (len(frames) + 1) // 2
    every = probe(runs[60] / "annotated.mp4")
    assert every["rate"] == encoder.frame_rate(60.0) and every["frames"] == len(frames)
    assert (runs[None] / "tracks.txt").read_bytes() == (runs[60] / "tracks.txt").read_bytes()
    # the video's frame i is the source's frame 2i: its boxes are where the tracks put them then
    shown, all_frames = (
        video_frames(runs[None] / "annotated.mp4", every=1),
        video_frames(runs[60] / "annotated.mp4", every=1),
    )
    for i in (3, len(shown) // 2, len(shown) - 2):
        diff = np.abs(shown[i].astype(int) - all_frames[2 * i].astype(int)).mean()
        assert diff < 3, (i, diff)  # the same picture, up to the encoder's loss


def test_video_every():
    from conveyor_qc.run.job import video_every

    assert [video_every(f, 30) for f in (0, 25, 29.97, 30, 50, 59.94, 60, 120)] == [1, 1, 1, 1, 2, 2, 2, 4]
    assert video_every(60, 60) == 1 and video_every(60, 1000) == 1 and video_every(60, 25) == 3


@pytest.mark.parametrize("scale", [0.5, 1 / 3])
def test_the_video_is_the_input_at_its_size(clip, tmp_path, scale):
    """The annotated video's pictures are the input's frames at output.video_scale: at the
    core's size (0.5, by default) its own downscaled frame; smaller, that frame shrunk again; as
    the full frame resized would be, up to the encoder's loss (the drawings aside: a median)."""
    folder = tmp_path / "run"
    r = cli("run", clip.video, "--out", folder, "--no-crops", "-q", "--set", f"output.video_scale={scale}")
    assert r.returncode == 0, r.stderr
    shown = video_frames(folder / "annotated.mp4", every=1)
    cap = cv2.VideoCapture(str(clip.video))
    source = []
    while (got := cap.read())[0]:
        source.append(got[1])
    cap.release()
    h, w = source[0].shape[:2]
    size = (round(w * scale) // 2 * 2, round(h * scale) // 2 * 2)
    assert len(shown) == len(source) and shown[0].shape[1::-1] == size

    def small(i):
        return cv2.resize(source[i], size, interpolation=cv2.INTER_AREA).astype(int)

    for i in (3, len(shown) // 2, len(shown) - 1):
        # where objects moved since two frames before: this frame's picture, not that one's
        moved = np.abs(small(i) - small(i - 2)).mean(axis=2) > 30
        assert moved.sum() > 500
        now, before = (np.median(np.abs(shown[i].astype(int) - small(j)).mean(axis=2)[moved]) for j in (i, i - 2))
        assert now <= 8 < 20 <= before, (i, now, before)  # up to the encoder's loss on edges
        assert np.median(np.abs(shown[i].astype(int) - small(i))) <= 3  # and the belt


def test_a_large_camera_makes_a_video_of_640x360s_pixels(clip, tmp_path):
    """output.video_max_pixels: a 1080p camera's video is 640x360 (what a 720p one gets at the
    default half size), its tracks the same as with the half-size video; 0 lifts the cap."""
    from conveyor_qc.run.job import video_scale

    big = tmp_path / "big.mp4"
    cap = cv2.VideoCapture(str(clip.video))
    out = cv2.VideoWriter(str(big), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (1920, 1080))
    for _ in range(30):
        out.write(cv2.resize(cap.read()[1], (1920, 1080), interpolation=cv2.INTER_LINEAR))
    out.release()
    cap.release()
    sizes, tracks = {}, {}
    for cap_pixels in (None, 0):
        folder = tmp_path / f"run-{cap_pixels}"
        extra = () if cap_pixels is None else ("--set", f"output.video_max_pixels={cap_pixels}")
        r = cli("run", big, "--out", folder, "--no-crops", "-q", *extra)
        assert r.returncode == 0, r.stderr
        sizes[cap_pixels] = probe(folder / "annotated.mp4")["size"]
        tracks[cap_pixels] = (folder / "tracks.txt").read_bytes()
    assert sizes == {None: (640, 360), 0: (960, 540)}
    assert tracks[None] == tracks[0] and tracks[None]
    assert video_scale((1280, 720), 0.5, 640 * 360) == 0.5  # 720p: the half size, as before
    assert video_scale((1080, 1920), 0.5, 640 * 360) == pytest.approx(1 / 3)  # portrait: 360x640
    assert video_scale((3840, 2160), 1.0, 0) == 1.0
