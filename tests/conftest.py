"""Shared fixtures: synthetic clips with exact ground truth (made once per
session), and the real photos that ship with the package."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor_qc.evaluation.metrics import read_mot

REPO = Path(__file__).resolve().parents[1]


CLI = [sys.executable, "-m", "conveyor_qc"]


def run_cli(*args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """`conveyor-qc ARGS` as a user runs it (this interpreter's module), its output captured."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


# The real photos and the Lookout API description ship with the package (conveyor_qc/data/);
# $CONVEYOR_QC_SHARED replaces them with a shared folder (the package's own rule).
from conveyor_qc.shared import cookie_photos_dir, missing_hint  # noqa: E402


@pytest.fixture(scope="session")
def cookies_dir() -> Path:
    """The 63 real cookie photos with train.manifest and masks/. They ship with the package, so a
    missing folder is a failure (a broken install or a wrong $CONVEYOR_QC_SHARED), not a skip."""
    d = cookie_photos_dir()
    assert (d / "train.manifest").is_file(), f"real cookie photos not found in {d}: {missing_hint()}"
    return d


class Clip:
    """A synthetic video with its ground truth."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.video = folder / "video.mp4"
        self.gt = read_mot(folder / "gt.txt")
        with open(folder / "labels.csv", newline="") as fh:
            self.labels = {int(r["id"]): r for r in csv.DictReader(fh)}

    @property
    def ids(self) -> set[int]:
        return set(self.labels)


@pytest.fixture(scope="session")
def make_clip(tmp_path_factory):
    """make_clip(preset, seed, seconds) -> Clip, cached for the session."""
    from conveyor_qc.evaluation.synth import synthesize

    cache: dict[tuple, Clip] = {}

    def make(preset: str = "cookies", seed: int = 0, seconds: float = 6.0) -> Clip:
        key = (preset, seed, seconds)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"clip-{preset}-{seed}")
            synthesize(folder, preset=preset, seed=seed, seconds=seconds)
            cache[key] = Clip(folder)
        return cache[key]

    return make


def moto_s3_server(bucket: str):
    """A real S3 API on loopback (moto's server mode) with one bucket, and dummy
    credentials so nothing can reach a real account. A generator for
    module-scoped fixtures: yields the endpoint URL, stops the server after."""
    moto_server = pytest.importorskip("moto.server", reason="moto[s3] with flask is needed (make test installs it)")
    import socket

    import boto3

    mp = pytest.MonkeyPatch()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        mp.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        mp.delenv(k, raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()
        mp.undo()


def popen_interruptible(args, **kwargs) -> subprocess.Popen:
    """Popen for a child the test stops with SIGINT (Ctrl-C). A shell starting a job in the
    background sets SIGINT to "ignore", children inherit that, and Python then installs no
    KeyboardInterrupt handler: restore the default so the test does not depend on how
    pytest itself was started."""
    return subprocess.Popen(args, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)  # noqa: PLW1509  only signal.signal runs in the child
