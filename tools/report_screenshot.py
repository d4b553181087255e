"""The picture of a run's report.html in docs/report.md: docs/report.png.

    python tools/report_screenshot.py --out docs/report.png [--work DIR | --run RUN_DIR]

Made from scratch and offline, as `make demo` goes: a training clip (`conveyor-qc synth --preset
cookies --seed 2 --seconds 20`), its run labelled from the clip's ground truth (`label
--from-truth`), a dataset and a model (`dataset --test-fraction 0 --per-object 20`, `train`), then
the demo clip (seed 1) run with that model, which writes report.html. With --run, an existing run
folder's page is shown instead (made again with `conveyor-qc report RUN_DIR --out` into a
temporary file, so the folder is not touched): `make demo`'s out/demo.

The page is opened from its file in Debian's headless chromium, driven through Selenium with the
network switched off, at 1280x900 (the browser set-up of tools/labelling_screenshot.py, imported
from it):

- on top, the page as it opens, 1330 px high: the run's status, its figures and the charts over time;
- below, the page scrolled to the anomalies: each one's crop beside its heat map.

The two screenshots are stacked with a grey rule between them, scaled to --width (960 px) and
written as a dithered 256-colour PNG (tools/labelling_screenshot.py's encoding). Progress goes to
stderr. Needs chromium and its chromedriver (apt-get install chromium chromium-driver) and selenium
(pip install selenium); `make test` installs all three.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from conveyor_qc.io.atomic import atomic_write_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/: labelling_screenshot.py beside this file
from labelling_screenshot import VIEW, browser, encode_png, fail, need_browser, qc, say, stack, wait_for

WIDTH = 960  # px: the picture's width (about what a Markdown page shows it at)
TOP_HEIGHT = 1330  # px: the first screenshot's height, down to the end of the charts
TRAIN_CLIP = ("--preset", "cookies", "--seed", "2", "--seconds", "20")
DEMO_CLIP = ("--preset", "cookies", "--seed", "1", "--seconds", "20")
TRAIN_DIR, TRAIN_RUN, DATASET_DIR, MODEL_DIR = "clips/train", "runs/train", "datasets/train", "models/cookies"
CLIP_DIR, RUN_DIR = "clips/line3", "runs/line3"

# Every picture in view has been decoded.
IN_VIEW_LOADED = """
return [...document.images].filter((i) => {
  const r = i.getBoundingClientRect();
  return r.bottom > 0 && r.top < innerHeight;
}).every((i) => i.complete && i.naturalWidth > 0);
"""


def make_run() -> Path:
    """The model and the judged run of `make demo` (in the current folder); the run's report.html."""
    for folder in (TRAIN_DIR, TRAIN_RUN, DATASET_DIR, MODEL_DIR, CLIP_DIR, RUN_DIR):
        shutil.rmtree(folder, ignore_errors=True)
    qc("synth", TRAIN_DIR, *TRAIN_CLIP, "-q")
    qc("synth", CLIP_DIR, *DEMO_CLIP, "-q")
    qc("run", f"{TRAIN_DIR}/video.mp4", "--out", TRAIN_RUN, "--no-video", "-q")
    qc("label", TRAIN_RUN, "--from-truth", TRAIN_DIR)
    qc("dataset", TRAIN_RUN, "--out", DATASET_DIR, "--test-fraction", "0", "--per-object", "20", "-q")
    qc("train", f"{DATASET_DIR}/train.manifest", "--out", MODEL_DIR)
    qc("run", f"{CLIP_DIR}/video.mp4", "--out", RUN_DIR, "--model", MODEL_DIR, "-q")
    return Path(RUN_DIR, "report.html").resolve()


def screenshot(driver: Any, what: str, element: str | None = None, height: int = VIEW[1]) -> np.ndarray:
    """The viewport, ``height`` px high (scrolled to the element of id ``element``, under a margin),
    once its pictures are in."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": VIEW[0], "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    if element is not None:
        driver.execute_script(
            "window.scrollTo(0, document.getElementById(arguments[0]).getBoundingClientRect().top + scrollY - 12)",
            element,
        )
    wait_for(lambda: driver.execute_script(IN_VIEW_LOADED), what)
    image = cv2.imdecode(np.frombuffer(driver.get_screenshot_as_png(), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise fail(f"the browser's screenshot ({what}) is no image")
    say(f"screenshot: {what} ({image.shape[1]}x{image.shape[0]})")
    return image


def shoot(page: Path) -> list[np.ndarray]:
    with browser() as driver:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(  # the page needs no network: shown with none
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        driver.get(page.as_uri())
        wait_for(lambda: driver.execute_script("return document.readyState === 'complete'"), "the page")
        return [
            screenshot(driver, "the page as it opens", height=TOP_HEIGHT),
            screenshot(driver, "the anomalies", "anomalies"),
        ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("docs/report.png"), help="the PNG to write")
    source = ap.add_mutually_exclusive_group()
    source.add_argument(
        "--work",
        type=Path,
        help="make the clips, runs, dataset and model in DIR and keep them; default: a temporary folder",
    )
    source.add_argument("--run", type=Path, help="show this finished run folder's page instead (e.g. out/demo)")
    ap.add_argument(
        "--width", type=int, default=WIDTH, help=f"the picture's width in px (default {WIDTH}; {VIEW[0]}: unscaled)"
    )
    args = ap.parse_args()
    if args.width < 1:
        ap.error("--width must be 1 or more")
    need_browser()  # before the minutes of making the runs and the model
    out = args.out.resolve()
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="report-screenshot-") as tmp:
        if args.run is not None:
            page = Path(tmp, "report.html")
            qc("report", str(args.run), "--out", str(page))
            shots = shoot(page)
        else:
            work = (args.work or Path(tmp)).resolve()
            work.mkdir(parents=True, exist_ok=True)
            os.chdir(work)  # relative paths from here on, as a reader of docs/report.md would type them
            try:
                shots = shoot(make_run())
            finally:
                os.chdir(here)
    image = stack(shots, args.width)
    png = encode_png(image)
    atomic_write_bytes(out, png)
    say(f"{image.shape[1]}x{image.shape[0]}, {len(png) // 1024} KB -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
