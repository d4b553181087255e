"""On the line (docs/line.md): Prometheus metrics scraped from a live run, and reject events timed
against the clip's ground truth, delivered to a file, stdout, a callback, a webhook receiver and a
real MQTT broker (Debian's mosquitto), all on loopback."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import CLI, REPO
from conveyor_qc.config import Config
from conveyor_qc.line.sinks import RejectTargets, SinkError
from conveyor_qc.run.job import run_video
from test_judging import DarkShare

sys.path.insert(0, str(REPO / "tools"))
from reject_timing import clip_errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    """Every sample of the endpoint, by name with its labels: ``{'conveyor_qc_counted_objects{label="normal"}': 3}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def reject_config(distance: float = 300.0, latency: float = 0.1) -> Config:
    config = Config()
    config.update({"reject.distance": distance, "reject.latency": latency})
    return config


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- metrics ---------------------------------------------------------------------------------------


def test_metrics_are_scraped_from_a_live_run(make_clip, tmp_path):
    """A run read at the clip's frame rate (as a camera gives it), scraped while it goes on: the
    series grow, the counts by label add up to the run's, the lag stays small, and the endpoint
    closes with the run."""
    clip = make_clip("cookies", seed=3, seconds=6)
    port = free_port()
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            str(clip.video),
            "--out",
            str(out),
            "--realtime",
            "--metrics-port",
            str(port),
            "-q",
            "--no-video",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    scrapes = []
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # not serving yet, or just closed
                scrapes.append(scrape(port))
            time.sleep(0.5)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"] == {"port": port}
    assert len(scrapes) >= 5, "a 6 s clip read at its frame rate is scraped several times"
    frames = [s["conveyor_qc_frames_total"] for s in scrapes]
    assert frames == sorted(frames) and frames[-1] > frames[0] >= 0
    assert frames[-1] <= summary["frames"]
    last = scrapes[-1]
    # Read at its frame rate: about the clip's 30 fps, never far behind the clip's clock.
    assert 20 <= last["conveyor_qc_fps"] <= 40
    assert -0.5 < last["conveyor_qc_lag_seconds"] < 1.0
    for label in ("normal", "anomaly", "unknown"):
        assert f'conveyor_qc_counted_objects{{label="{label}"}}' in last
        assert f'conveyor_qc_objects_total{{label="{label}"}}' in last
    counted = sum(last[f'conveyor_qc_counted_objects{{label="{k}"}}'] for k in ("normal", "anomaly", "unknown"))
    assert 0 < counted <= summary["counts"]["total"]
    assert last["conveyor_qc_source_up"] == 1
    assert last["conveyor_qc_frame_seconds_count"] == last["conveyor_qc_frames_total"]
    assert (
        last['conveyor_qc_run_info{model="None",source="' + str(clip.video) + '",version="' + summary["version"] + '"}']
        == 1
    )
    with pytest.raises(OSError):  # the endpoint ends with the run
        scrape(port)


def test_metrics_port_taken_is_told_before_any_output(make_clip, tmp_path):
    clip = make_clip("cookies", seed=3, seconds=6)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [*CLI, "run", str(clip.video), "--out", str(tmp_path / "run"), "--metrics-port", str(port), "-q"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


# --- reject events: timing --------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["cookies", "vertical"])
def test_reject_crossing_times_match_the_ground_truth(make_clip, preset):
    """Predicted against true crossing times of every object, for a line at the exit edge and one
    1000 px past it (a frame's length): within a frame at the median, within three at worst."""
    clip = make_clip(preset, seed=7, seconds=8)
    errors = clip_errors(clip.folder, [0.0, 1000.0])
    for distance, e in errors.items():
        e = np.abs(np.asarray(e))
        assert len(e) >= 8, f"{preset}: few objects matched at {distance} px"
        assert np.median(e) < 1.0, (preset, distance, np.median(e))
        assert e.max() < 3.0, (preset, distance, e.max())


# --- reject events: where they go -------------------------------------------------------------------


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook receiver on loopback: keeps every JSON body POSTed to it."""

    def __init__(self):
        self.bodies: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/reject"


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def broker():
    """mosquitto on a free loopback port (make test installs Debian's mosquitto)."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        pytest.skip("mosquitto is not installed (make test installs it: apt-get install mosquitto)")
    port = free_port()
    proc = subprocess.Popen([exe, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"mosquitto did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)


def subscribe(port: int, topic: str) -> tuple[object, list[dict]]:
    import paho.mqtt.client as mqtt

    got: list[dict] = []
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_a: (c.subscribe(topic, qos=1), None)[1]
    client.on_subscribe = lambda *_a: ready.set()
    client.on_message = lambda _c, _u, msg: got.append(json.loads(msg.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert ready.wait(10), "subscribed to the broker"
    return client, got


def test_every_anomaly_reaches_every_sink(make_clip, tmp_path, receiver, broker):
    """One run, every sink at once: rejects.jsonl, a JSON-lines file, the callback, the webhook and
    MQTT get the same events, one per anomaly, in the order verdicts were given."""
    clip = make_clip("cookies", seed=3, seconds=6)
    client, via_mqtt = subscribe(broker, "line3/reject")
    called: list[dict] = []
    out = tmp_path / "run"
    result = run_video(
        clip.video,
        out,
        reject_config(300.0),
        model=DarkShare(),
        video=False,
        on_reject=called.append,
        reject_to=RejectTargets(
            events=str(tmp_path / "events.jsonl"),
            webhook=receiver.url,
            mqtt=f"mqtt://127.0.0.1:{broker}/line3/reject",
        ),
    )
    deadline = time.monotonic() + 10
    while len(via_mqtt) < len(called) and time.monotonic() < deadline:
        time.sleep(0.1)
    client.loop_stop()
    s = result.summary
    assert s["anomalies"] >= 3
    in_run = read_jsonl(out / "rejects.jsonl")
    assert len(in_run) == s["anomalies"] == s["reject"]["events"]
    assert read_jsonl(tmp_path / "events.jsonl") == in_run
    assert called == in_run
    assert receiver.bodies == in_run
    assert via_mqtt == in_run
    assert s["reject"]["sinks"]["webhook"]["sent"] == len(in_run) and s["reject"]["sinks"]["webhook"]["failed"] == 0
    assert s["reject"]["sinks"]["mqtt"]["sent"] == len(in_run)
    # The run's page says how many reject signals went out, and how many too late.
    page = (out / "report.html").read_text()
    card = re.search(r'data-key="reject"><div class="label">[^<]*</div><div class="value">(\d+)</div>', page)
    assert card and int(card.group(1)) == len(in_run)
    with open(out / "objects.csv") as fh:
        anomalies = {int(line.split(",")[0]) for line in fh if ",anomaly," in line}
    assert {e["track_id"] for e in in_run} == anomalies
    for e in in_run:
        assert e["label"] == "anomaly" and e["line_px"] == 300.0
        assert e["window_s"][0] < e["crossing_s"] < e["window_s"][1]
        assert e["crossing_s"] > e["last_frame"] / 30.0  # past the exit edge: after its last frame
        assert e["decided_s"] >= e["last_frame"] / 30.0
        assert e["late"] == (e["margin_s"] < 0)
        assert e["crossing_at"] is None  # a file read as fast as it goes: no wall-clock crossing time


def test_late_verdicts_are_sent_marked_never_dropped(make_clip, tmp_path):
    """A gate that needs more time than any verdict leaves it (latency 30 s): every event is late,
    and every one is sent."""
    clip = make_clip("cookies", seed=3, seconds=6)
    got: list[dict] = []
    result = run_video(
        clip.video,
        tmp_path / "run",
        reject_config(300.0, latency=30.0),
        model=DarkShare(),
        video=False,
        crops=False,
        on_reject=got.append,
    )
    s = result.summary
    assert len(got) == s["anomalies"] == s["reject"]["events"] == s["reject"]["late"] > 0
    assert all(e["late"] and e["margin_s"] < 0 for e in got)


def test_a_receiver_that_is_down_is_counted_not_fatal(make_clip, tmp_path):
    clip = make_clip("cookies", seed=3, seconds=6)
    warnings: list[str] = []
    result = run_video(
        clip.video,
        tmp_path / "run",
        reject_config(),
        model=DarkShare(),
        video=False,
        crops=False,
        reject_to=RejectTargets(webhook=f"http://127.0.0.1:{free_port()}/nobody"),
        warn=warnings.append,
    )
    hook = result.summary["reject"]["sinks"]["webhook"]
    assert hook["failed"] == result.summary["anomalies"] > 0 and hook["sent"] == 0
    assert sum("not delivered to webhook" in w for w in warnings) == 1  # said once, not per event
    assert len(read_jsonl(tmp_path / "run" / "rejects.jsonl")) == hook["failed"]


def test_a_broker_that_does_not_answer_fails_before_any_output(make_clip, tmp_path):
    clip = make_clip("cookies", seed=3, seconds=6)
    with pytest.raises(SinkError, match="cannot reach the MQTT broker"):
        run_video(
            clip.video,
            tmp_path / "run",
            reject_config(),
            reject_to=RejectTargets(mqtt=f"mqtt://127.0.0.1:{free_port()}/t"),
        )
    assert not (tmp_path / "run").exists()


def test_cli_events_on_stdout_are_json_lines_only(make_clip, tmp_path):
    """`--reject-events -`: stdout carries the events and nothing else (the summary line goes to stderr);
    reject options without a reject line are a usage error."""
    clip = make_clip("cookies", seed=3, seconds=6)
    script = (
        "import sys; sys.path.insert(0, 'tests'); from test_judging import DarkShare;"
        "from conveyor_qc.cli import main; import conveyor_qc.cli.run as r;"
        "real = r.run_video; r.run_video = lambda *a, **k: real(*a, **{**k, 'model': DarkShare()});"
        "sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "run"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "run",
            str(clip.video),
            "--out",
            str(out),
            "--set",
            "reject.distance=250",
            "--reject-events",
            "-",
            "-q",
            "--no-video",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines and lines == read_jsonl(out / "rejects.jsonl")
    assert "reject events" in r.stderr and "counted at the line" in r.stderr
    r = subprocess.run(
        [*CLI, "run", str(clip.video), "--out", str(tmp_path / "x"), "--reject-events", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "need a reject line" in r.stderr
