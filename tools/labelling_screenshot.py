"""The picture of the labelling page in docs/labelling.md: docs/labelling.png.

    python tools/labelling_screenshot.py --out docs/labelling.png [--work DIR]

Made from scratch and offline, as docs/labelling.md's loop goes: a synthetic clip (`conveyor-qc
synth --preset cookies --seed 2 --seconds 20`), its run (`run --no-video`), labelled from the clip's
ground truth (`label --from-truth`), and a model trained on those labels (`dataset --test-fraction
0`, `train`). Then the labels of two objects are cleared again, so that the page shows labelled and
unlabelled objects: the first and third after the anomaly whose heat maps are the clearest (the
highest mean heat-map peak over its crops). The page is served in this process
(label_server.make_server, with the model's heat maps as `conveyor-qc label --model` serves them)
and shown in Debian's headless chromium, driven through Selenium as tests/test_label.py does, at
1280x900:

- on top, the page as it opened (it selects the first unlabelled object), scrolled so that the
  anomaly is the first object under the header;
- below, the same after pressing H: each crop with the model's heat map over it, its score under it.

With --asking, instead: a clip where anomalies are rare (`synth --preset cookies --seed 2 --seconds
60 --anomaly-share 0.04`), its run, and the page in its default order after a person (the tool,
answering with the true labels) has answered the first 24 questions: the last answers, the model's
line in the header, and the next questions with the model's guesses.

The two screenshots are stacked with a grey rule between them, scaled to --width (960 px, about what
a Markdown page shows it at) and written as a dithered 256-colour PNG (about 370 KB; in full colour,
about 1 MB, when Pillow is missing). Progress goes to stderr. Needs chromium and its chromedriver
(apt-get install chromium chromium-driver) and selenium (pip install selenium); `make test`
installs all three.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from conveyor_qc.io.atomic import atomic_write_bytes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
VIEW = (1280, 900)  # px: the browser's viewport
WIDTH = 960  # px: the picture's width (about what a Markdown page shows it at), to stay under 400 KB
CLIP = ("--preset", "cookies", "--seed", "2", "--seconds", "20")
# --asking: a line where anomalies are rare (docs/labelling.md, "Asking the right questions")
RARE_CLIP = ("--preset", "cookies", "--seed", "2", "--seconds", "60", "--anomaly-share", "0.04")
ANSWERS = 24
# The folders made in the work folder, named as in docs/labelling.md (the page names its labels file
# runs/cookies/labels.csv).
CLIP_DIR, RUN_DIR, DATASET_DIR, MODEL_DIR = "clips/cookies", "runs/cookies", "datasets/cookies", "models/cookies"

# Every crop in view (and with the heat maps on, every score in view) has arrived.
IN_VIEW_LOADED = """
const heat = document.getElementById('heat').getAttribute('aria-pressed') === 'true';
return [...document.querySelectorAll('.strip img')].filter((i) => {
  const r = i.getBoundingClientRect();
  return r.bottom > 0 && r.top < innerHeight;
}).every((i) => i.complete && i.naturalWidth > 0 && i.getAttribute('src') === (heat ? i.dataset.heat : i.dataset.crop)
  && (!heat || i.parentElement.querySelector('.score').textContent !== ''));
"""

# Scroll so that the card arguments[0] is the first one under the (sticky) header.
SCROLL_TO = """
const header = document.querySelector('header.top').getBoundingClientRect().height;
const card = document.getElementById(arguments[0]).getBoundingClientRect().top;
window.scrollTo(0, card + window.scrollY - header - 10);
"""


#: The tool's name in its messages: this one's, or that of the tool importing these helpers
#: (report_screenshot.py).
TOOL = Path(sys.argv[0]).stem or "labelling_screenshot"


def say(text: str) -> None:
    print(f"{TOOL}: {text}", file=sys.stderr, flush=True)


def fail(text: str) -> SystemExit:
    return SystemExit(f"{TOOL}: error: {text}")


def qc(*args: str) -> None:
    """One `conveyor-qc` command, its output on stderr."""
    say("conveyor-qc " + " ".join(args))
    done = subprocess.run([sys.executable, "-m", "conveyor_qc", *args], stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise fail(f"`conveyor-qc {args[0]}` failed (exit {done.returncode})")


def make_run_and_model() -> None:
    """The clip, its run labelled from the ground truth, a dataset and a model (in the current folder)."""
    for folder in (CLIP_DIR, RUN_DIR, DATASET_DIR, MODEL_DIR):
        shutil.rmtree(folder, ignore_errors=True)
    qc("synth", CLIP_DIR, *CLIP, "-q")
    qc("run", f"{CLIP_DIR}/video.mp4", "--out", RUN_DIR, "--no-video", "-q")
    qc("label", RUN_DIR, "--from-truth", CLIP_DIR)
    qc("dataset", RUN_DIR, "--out", DATASET_DIR, "--test-fraction", "0", "-q")
    qc("train", f"{DATASET_DIR}/train.manifest", "--out", MODEL_DIR)


def track_ids(run: Path) -> list[int]:
    with open(run / "objects.csv", newline="") as fh:
        return [int(r["track_id"]) for r in csv.DictReader(fh)]


def read_labels(run: Path) -> dict[int, str]:
    with open(run / "labels.csv", newline="") as fh:
        return {int(r["track_id"]): r["label"] for r in csv.DictReader(fh)}


def clearest_anomaly(run: Path, model: Any) -> int:
    """The anomaly with 3 crops or more, and 3 objects after it, whose heat maps are strongest: the
    highest mean over its crops of the heat map's peak."""
    labels = read_labels(run)
    best, best_heat = None, -1.0
    for track in track_ids(run)[:-3]:
        paths = sorted((run / "crops" / str(track)).glob("*.jpg"))
        if labels.get(track) != "anomaly" or len(paths) < 3:
            continue
        explained = model.explain([cv2.imread(str(p)) for p in paths])
        heat = float(np.mean([0.0 if h is None else float(h.max()) for _, h in explained]))
        if heat > best_heat:
            best, best_heat = track, heat
    if best is None:
        raise fail(f"{run} has no anomaly with 3 crops or more to show")
    say(f"object #{best} has the clearest heat maps (mean peak {best_heat:.1f} times the edge of normal)")
    return best


def clear_labels(run: Path, tracks: set[int]) -> None:
    """Remove some objects' labels from RUN/labels.csv, as if nobody had labelled them yet."""
    labels = read_labels(run)
    with open(run / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["track_id", "label"])
        w.writerows((t, label) for t, label in labels.items() if t not in tracks)
    say(f"cleared the labels of {', '.join(f'#{t}' for t in sorted(tracks))}")


def serving(run: Path, explain: Callable | None, order: str = "passage") -> contextlib.AbstractContextManager[Any]:
    from conveyor_qc.dataset.asking import Asker
    from conveyor_qc.dataset.label_server import make_server, running

    server = make_server(run, port=0, explain=explain, order=order, asker=Asker)
    report = server.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        # The browser quits while heat maps of crops just out of view are still on their way.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            report(request, client_address)

    server.handle_error = handle_error  # type: ignore[method-assign]
    return running(server)


def need_browser() -> None:
    """Chromium, chromedriver and selenium are there, or a SystemExit saying how to get them."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        raise fail(
            f"{' and '.join(missing)} missing (a headless browser for the page): "
            "install them with  apt-get install chromium chromium-driver"
        )
    if importlib.util.find_spec("selenium") is None:
        raise fail("selenium missing (it drives the browser): install it with  pip install selenium")


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """Debian's headless chromium showing pages at exactly VIEW. Its driver's path is given, so
    Selenium Manager is never asked to download a browser."""
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-color-profile=srgb",  # the same colours on any machine
    ):
        opts.add_argument(arg)
    opts.add_argument(f"--window-size={VIEW[0]},{VIEW[1]}")
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        # the window's size includes the browser's own bars; the page gets exactly VIEW
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": VIEW[0], "height": VIEW[1], "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    end = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > end:
            raise fail(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def screenshot(driver: Any, card: str, what: str) -> np.ndarray:
    """The viewport, scrolled to the card, once everything in view has loaded."""
    driver.execute_script(SCROLL_TO, card)
    wait_for(lambda: driver.execute_script(IN_VIEW_LOADED), what)
    driver.execute_script(SCROLL_TO, card)  # again: the header may have grown (the heat maps' legend)
    wait_for(lambda: driver.execute_script(IN_VIEW_LOADED), what)
    image = cv2.imdecode(np.frombuffer(driver.get_screenshot_as_png(), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise fail(f"the browser's screenshot ({what}) is no image")
    say(f"screenshot: {what} ({image.shape[1]}x{image.shape[0]})")
    return image


def shoot(run: Path, model_dir: Path) -> list[np.ndarray]:
    """The page as it opens, and with the heat maps on (H), both scrolled to the clearest anomaly."""
    from selenium.webdriver.common.action_chains import ActionChains

    from conveyor_qc.anomaly.model import load_model
    from conveyor_qc.cli.dataset import model_explainer

    with load_model(model_dir) as model:
        focus = clearest_anomaly(run, model)
        after = track_ids(run)
        after = after[after.index(focus) + 1 :]
        clear_labels(run, {after[0], after[2]})
        with serving(run, model_explainer(model)) as server, browser() as driver:
            say(f"serving {run} at {server.url}")
            driver.get(server.url)
            wait_for(lambda: driver.execute_script("return document.body.dataset.ready === '1'"), "the page")
            shots = [screenshot(driver, f"obj-{focus}", "the page as it opens")]
            ActionChains(driver).send_keys("h").perform()
            shots.append(screenshot(driver, f"obj-{focus}", "with the heat maps (H)"))
    return shots


def make_rare_run() -> dict[int, str]:
    """A clip where anomalies are rare, its run, and its true labels (kept out of the run folder:
    the person the tool plays answers with them)."""
    for folder in (CLIP_DIR, RUN_DIR):
        shutil.rmtree(folder, ignore_errors=True)
    qc("synth", CLIP_DIR, *RARE_CLIP, "-q")
    qc("run", f"{CLIP_DIR}/video.mp4", "--out", RUN_DIR, "--no-video", "-q")
    qc("label", RUN_DIR, "--from-truth", CLIP_DIR)
    truth = read_labels(Path(RUN_DIR))
    (Path(RUN_DIR) / "labels.csv").unlink()
    return truth


def shoot_asking(run: Path, truth: dict[int, str], answers: int) -> list[np.ndarray]:
    """The page in its default order: a person answers the first ``answers`` questions with the
    true labels, then the page as it stands, scrolled to the answers' end (the model's guesses below)."""
    from selenium.webdriver.common.action_chains import ActionChains

    with serving(run, None, order="active") as server, browser() as driver:
        say(f"serving {run} at {server.url}")
        driver.get(server.url)
        basis = "return document.getElementById('model').dataset.basis || ''"
        wait_for(lambda: driver.execute_script(basis) == "unusual", "the first order")
        current = "return +document.querySelector('article.obj.current').dataset.id"
        for _ in range(answers):
            t = driver.execute_script(current)
            ActionChains(driver).send_keys("a" if truth[t] == "anomaly" else "n").perform()
            wait_for(lambda t=t: driver.execute_script(current) != t, "the next question")
        wait_for(
            lambda: read_labels(run) == {t: truth[t] for t in read_labels(run)} and len(read_labels(run)) == answers,
            "labels.csv",
        )
        wait_for(lambda: not server.asker.state()["pending"] and driver.execute_script(basis) == "model", "the model")
        version = str(server.asker.state()["version"])
        wait_for(
            lambda: driver.execute_script("return document.body.dataset.orderVersion") == version, "the last order"
        )
        found = sum(truth[t] == "anomaly" for t in read_labels(run))
        say(f"{answers} answers, {found} of {sum(v == 'anomaly' for v in truth.values())} anomalies among them")
        ids = driver.execute_script("return [...document.querySelectorAll('article.obj')].map(a => a.id)")
        here = ids.index(f"obj-{driver.execute_script(current)}")
        return [screenshot(driver, ids[max(0, here - 2)], "asking: the last answers and the next questions")]


def stack(shots: list[np.ndarray], width: int) -> np.ndarray:
    """The screenshots one above the other, a grey rule between them, scaled to width."""
    rule = np.full((6, shots[0].shape[1], 3), 128, np.uint8)
    parts = [shots[0]]
    for shot in shots[1:]:
        parts += [rule, shot]
    image = np.vstack(parts)
    if width != image.shape[1]:
        height = round(image.shape[0] * width / image.shape[1])
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image


def encode_png(image: np.ndarray) -> bytes:
    """A 256-colour PNG, dithered (Pillow's octree palette: the cards' colour fades and the heat
    maps' ramp stay smooth), a third of full colour's size; without Pillow, full colour."""
    try:
        from PIL import Image
    except ImportError:
        say("no Pillow (pip install pillow): the picture is written in full colour, about three times larger")
        ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        assert ok, "PNG encoding failed"
        return png.tobytes()
    rgb = Image.fromarray(np.ascontiguousarray(image[:, :, ::-1]))
    palette = rgb.quantize(256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    rgb.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(out, "PNG", optimize=True)
    return out.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("docs/labelling.png"), help="the PNG to write")
    ap.add_argument(
        "--work",
        type=Path,
        help=f"make the clip, run, dataset and model in DIR and keep them (its {CLIP_DIR}, {RUN_DIR}, "
        f"{DATASET_DIR} and {MODEL_DIR} are made anew); default: a temporary folder",
    )
    ap.add_argument(
        "--asking",
        action="store_true",
        help=f"instead, the page asking in its default order on a clip with rare anomalies, after {ANSWERS} "
        "answers (docs/labelling-asking.png)",
    )
    ap.add_argument(
        "--width", type=int, default=WIDTH, help=f"the picture's width in px (default {WIDTH}; {VIEW[0]}: unscaled)"
    )
    args = ap.parse_args()
    if args.width < 1:
        ap.error("--width must be 1 or more")
    need_browser()  # before the minutes of making the run and the model
    out = args.out.resolve()
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="labelling-screenshot-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        os.chdir(work)  # relative paths from here on, as a reader of docs/labelling.md would type them
        try:
            if args.asking:
                shots = shoot_asking(Path(RUN_DIR), make_rare_run(), ANSWERS)
            else:
                make_run_and_model()
                shots = shoot(Path(RUN_DIR), Path(MODEL_DIR))
        finally:
            os.chdir(here)
    image = stack(shots, args.width)
    png = encode_png(image)
    atomic_write_bytes(out, png)
    say(f"{image.shape[1]}x{image.shape[0]}, {len(png) // 1024} KB -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
