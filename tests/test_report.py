"""report.html: the page of a run folder and of a batch folder (docs/report.md).

Real runs of a synthetic clip: one without a model, one with a local model trained on the clip's
own crops labelled from its ground truth (a few seconds), whose report ``run`` writes itself. The
pages are opened in the real headless browser (Debian's chromium through Selenium, set up as in
tests/test_label.py) with the network switched off, and read as a person sees them.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conveyor_qc.cli import main
from conveyor_qc.report import GALLERY_LIMIT, ReportError, write_batch_report, write_run_report
from conveyor_qc.report.charts import MAX_BARS, counts_chart, display_bins
from test_label import browser, wait_for  # noqa: F401  the headless browser of the labelling page's tests

# --- fixtures and helpers ----------------------------------------------------------


class Runs:
    def __init__(self, clip, plain: Path, judged: Path, model: Path):
        self.clip, self.plain, self.judged, self.model = clip, plain, judged, model


@pytest.fixture(scope="module")
def runs(make_clip, tmp_path_factory) -> Runs:
    """The clip run without a model (``plain``), a model trained on that run's crops labelled from
    the clip's ground truth, and the clip run again with it (``judged``, with annotated.mp4)."""
    from conveyor_qc.anomaly.model import train_model
    from conveyor_qc.dataset.manifest import ManifestEntry, write_manifest
    from conveyor_qc.evaluation.truth_labels import label_from_truth
    from conveyor_qc.run.job import run_video

    clip = make_clip("cookies", seed=5, seconds=4)
    base = tmp_path_factory.mktemp("report")
    plain, judged, model = base / "plain", base / "judged", base / "model"
    run_video(clip.video, plain, video=False)
    label_from_truth(plain, clip.folder)
    with open(plain / "labels.csv", newline="") as fh:
        labels = {r["track_id"]: r["label"] for r in csv.DictReader(fh)}
    entries = [
        ManifestEntry(str(p), labels[p.parent.name])
        for p in sorted((plain / "crops").rglob("*.jpg"))
        if p.parent.name in labels
    ]
    write_manifest(base / "crops.manifest", entries)
    train_model(base / "crops.manifest", model)
    run_video(clip.video, judged, model=model)
    summary = json.loads((judged / "summary.json").read_text())
    assert summary["anomalies"] >= 3 and summary["normal"] >= 3, "the clip's run should judge both ways"
    return Runs(clip, plain, judged, model)


def summary_of(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def anomalies_by_score(run: Path) -> list[tuple[int, float]]:
    """(track id, score) of the run's anomalies, the highest scores first."""
    with open(run / "objects.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] == "anomaly"]
    return sorted(((int(r["track_id"]), float(r["score"])) for r in rows), key=lambda t: (-t[1], t[0]))


class Links(HTMLParser):
    """Every URL a page names (src, href, xlink:href, poster, action) and its tags."""

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "poster", "action", "srcset", "data") and value is not None:
                self.urls.append((tag, name, value))


def links_of(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def assert_self_contained(page: Path, allowed: set[str]) -> None:
    """Nothing the page names is fetched from elsewhere: pictures are data: URIs, SVG references are
    fragments (#id), and the only other URLs are the relative ones in ``allowed``."""
    text = page.read_text(encoding="utf-8")
    parsed = links_of(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    others = set()
    for tag, name, url in parsed.urls:
        if url.startswith(("data:image/", "#")):
            continue
        assert not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", url) and not url.startswith("//"), (tag, name, url)
        others.add(url)
    assert others <= allowed, others
    assert "@import" not in text and not re.search(r"url\(\s*['\"]?(https?:)?//", text)
    assert "<!DOCTYPE svg" not in text  # matplotlib's DOCTYPE names the SVG DTD's URL


def offline(driver) -> None:
    """No network for the browser from now on (files still open)."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )


def open_report(driver, page: Path) -> None:
    offline(driver)
    driver.get(page.resolve().as_uri())
    wait_for(lambda: driver.execute_script("return document.readyState === 'complete'"), what="page loaded")


def figure(driver, key: str) -> str:
    return driver.execute_script(
        "return document.querySelector(`.figure[data-key='${arguments[0]}'] .value`).textContent", key
    )


# --- a run's page, in the browser ----------------------------------------------------


def test_run_report_in_the_browser(browser, runs):  # noqa: F811
    run = runs.judged
    page = run / "report.html"
    assert page.is_file(), "run writes report.html as it finishes"
    summary = summary_of(run)
    open_report(browser, page)

    # the headline figures are the summary's
    assert figure(browser, "objects") == str(summary["objects"])
    assert figure(browser, "counted") == str(summary["counts"]["total"])
    assert figure(browser, "anomalies") == str(summary["anomalies"])
    assert figure(browser, "normal") == str(summary["normal"])
    rate = 100 * summary["anomalies"] / (summary["anomalies"] + summary["normal"])
    assert figure(browser, "rate") == f"{rate:.1f} %"
    assert "Complete" in browser.find_element("id", "status").text

    # the gallery: every anomaly (fewer than the cap), the highest scores first, each with its crop
    # and its heat map, both pictures that really decode
    want = anomalies_by_score(run)
    assert len(want) == summary["anomalies"] <= GALLERY_LIMIT
    cards = browser.execute_script(
        "return [...document.querySelectorAll('.gallery article.card')].map(c => [+c.dataset.id, +c.dataset.score])"
    )
    assert [c[0] for c in cards] == [t for t, _ in want]
    assert [c[1] for c in cards] == pytest.approx([s for _, s in want], abs=1e-4)
    pictures = browser.execute_script(
        "return [...document.querySelectorAll('.gallery article.card')].map(c => "
        "['img.crop', 'img.heat'].map(s => { const i = c.querySelector(s); return i && i.complete ? i.naturalWidth : 0; }))"
    )
    assert len(pictures) == len(want) and all(crop > 0 and heat > 0 for crop, heat in pictures), pictures
    assert browser.find_element("id", "heat-legend").is_displayed()
    for tid, score in want:
        text = browser.find_element("id", f"obj-{tid}").text
        assert f"#{tid}" in text and f"score {score:.2f}" in text
    assert not browser.find_elements("id", "left-out")

    # the charts: a bar per bin of counts_over_time for each label, a point per bin with a judged object
    bins = summary["counts_over_time"]["bins"]
    for label in ("normal", "anomaly", "unknown"):
        n = browser.execute_script(
            f"return document.querySelectorAll('svg#counts [id^=\"counts-bar-{label}-\"]').length"
        )
        assert n == len(bins), (label, n)
    points = browser.execute_script("return document.querySelectorAll('svg#rate #rate-points use').length")
    assert points == sum(1 for b in bins if b["normal"] + b["anomaly"] > 0) > 0
    size = browser.execute_script(
        "const r = document.querySelector('svg#counts').getBoundingClientRect(); return [r.width, r.height]"
    )
    assert size[0] > 600 and size[1] > 100  # drawn, at the page's width
    rows = browser.execute_script("return document.querySelectorAll('#over-time-table tbody tr').length")
    assert rows == len(bins)

    # the video: embedded and linked, relative to the page
    assert browser.find_element("id", "annotated").get_attribute("src") == (run / "annotated.mp4").resolve().as_uri()
    assert browser.find_element("id", "video-link").get_attribute("href").endswith("/annotated.mp4")

    # settings and provenance
    about = browser.find_element("id", "provenance").text
    assert summary["version"] in about and str(runs.model.resolve()) in about and str(runs.clip.video) in about
    assert "all at their defaults" in browser.find_element("id", "settings").text

    # nothing came from the network: the only resources are the page's own folder's
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith("file://") for u in fetched), fetched
    assert_self_contained(page, allowed={"annotated.mp4"})
    assert not list(run.glob(".report.html*")), "temporary file left behind"


def test_run_without_model_says_not_judged(browser, runs):  # noqa: F811
    page = runs.plain / "report.html"
    summary = summary_of(runs.plain)
    open_report(browser, page)
    assert figure(browser, "anomalies") == "not judged"
    assert figure(browser, "unknown") == str(summary["objects"])
    assert "Not judged" in browser.find_element("id", "not-judged").text
    assert not browser.find_elements("css selector", ".gallery article.card")
    assert not browser.find_elements("css selector", "svg#rate")
    bins = summary["counts_over_time"]["bins"]
    n = browser.execute_script("return document.querySelectorAll('svg#counts [id^=\"counts-bar-unknown-\"]').length")
    assert n == len(bins)
    assert not browser.find_elements("css selector", "svg#counts [id^='counts-bar-anomaly-']")
    assert "--no-video" in browser.find_element("id", "no-video").text
    assert_self_contained(page, allowed=set())


# --- the gallery's cap, the model, the crops -------------------------------------------


def card_ids(page: Path) -> list[int]:
    return [int(m) for m in re.findall(r'<article class="card" id="obj-(\d+)"', page.read_text())]


def heat_maps(page: Path) -> int:
    return page.read_text().count('<img class="heat" src="data:image/jpeg;base64,')


def test_more_anomalies_than_fit_the_highest_scores_first(runs, tmp_path):
    want = anomalies_by_score(runs.judged)
    page = write_run_report(runs.judged, out=tmp_path / "r.html", limit=2)  # the model: the run's own folder
    assert card_ids(page) == [t for t, _ in want[:2]]
    assert heat_maps(page) == 2
    text = page.read_text()
    assert f"{len(want) - 2} more, with lower scores, are left out" in text
    # out of the folder: the video is linked from where the page is
    assert_self_contained(page, allowed={f"../{runs.judged.parent.name}/judged/annotated.mp4"})


def test_model_folder_gone_or_named(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs.judged, run)
    model = tmp_path / "model-moved"
    shutil.copytree(runs.model, model)
    summary = summary_of(run)
    summary["model"]["path"] = str(tmp_path / "nowhere")
    (run / "summary.json").write_text(json.dumps(summary))
    page = write_run_report(run)
    assert len(card_ids(page)) == summary["anomalies"] and heat_maps(page) == 0
    assert "is no longer there" in page.read_text()

    assert main(["report", str(run), "--model", str(model)]) == 0  # the model named: heat maps
    assert heat_maps(page) == summary["anomalies"]
    assert "no longer there" not in page.read_text()

    (model / "model.json").write_text((model / "model.json").read_text().replace('"local"', '"local" ', 1))
    summary["model"]["path"] = str(model)  # there, but changed since the run: not used by itself
    (run / "summary.json").write_text(json.dumps(summary))
    page = write_run_report(run)
    assert heat_maps(page) == 0 and "has changed since this run" in page.read_text()


def heat_uris(page: Path) -> list[str]:
    return re.findall(r'<img class="heat" src="(data:image/jpeg;base64,[^"]+)"', page.read_text())


def test_heat_maps_drawn_on_threads_are_the_models_own(runs, tmp_path):
    """The cards are drawn on a few threads: each heat map is the one the model draws for that
    crop alone, in the order of the cards, and the process's BLAS threads are as they were."""

    import cv2
    from threadpoolctl import threadpool_info

    from conveyor_qc.anomaly.heatmap import overlay
    from conveyor_qc.anomaly.model import load_model
    from conveyor_qc.report.page import jpeg_data_uri
    from conveyor_qc.report.run_report import THUMB

    blas_before = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    model = load_model(runs.model)
    page = write_run_report(runs.judged, model, out=tmp_path / "r.html")
    assert [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"] == blas_before
    ids = card_ids(page)
    assert len(ids) >= 3 and heat_maps(page) == len(ids)
    want = []
    for tid in ids:
        files = sorted((runs.judged / "crops" / str(tid)).glob("*.jpg"))
        image = cv2.imread(str(files[len(files) // 2]))
        ((_, heat),) = model.explain([image])
        want.append(jpeg_data_uri(overlay(image, heat), THUMB))
    assert heat_uris(page) == want
    # each over its crop, coloured where the model sees the anomaly: not the crop as it is
    plain = [
        jpeg_data_uri(cv2.imread(str(sorted((runs.judged / "crops" / str(t)).glob("*.jpg"))[0])), THUMB) for t in ids
    ]
    assert not set(want) & set(plain)


def test_a_model_failing_on_one_crop_leaves_no_heat_maps_and_says_why(runs, tmp_path):
    import cv2
    import numpy as np

    from conveyor_qc.anomaly.model import load_model

    model = load_model(runs.model)
    shown = card_ids(write_run_report(runs.judged, model, out=tmp_path / "first.html"))
    files = sorted((runs.judged / "crops" / str(shown[1])).glob("*.jpg"))
    bad = cv2.imread(str(files[len(files) // 2]))  # the second card's crop
    explain = model.explain

    def failing_on_that_crop(images):
        if any(im.shape == bad.shape and np.array_equal(im, bad) for im in images):
            raise RuntimeError("out of memory on the device")
        return explain(images)

    model.explain = failing_on_that_crop
    page = write_run_report(runs.judged, model, out=tmp_path / "r.html")
    text = page.read_text()
    assert heat_maps(page) == 0 and card_ids(page) == shown
    assert "No heat maps: the model failed to draw them (RuntimeError: out of memory on the device)" in text


def test_run_without_crops(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs.judged, run, ignore=shutil.ignore_patterns("crops", "report.html"))
    page = write_run_report(run, runs.model)
    text = page.read_text()
    assert 'id="no-crops"' in text and len(card_ids(page)) == summary_of(run)["anomalies"]
    assert "data:image/jpeg" not in text.split('id="anomalies"')[1].split('id="video-section"')[0]


def test_text_from_the_run_is_escaped(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs.plain, run)
    summary = summary_of(run)
    summary["source"] = "<script>alert(1)</script>&<b>x</b>\"'.mp4"
    summary["mask"]["warnings"] = ["<img src=http://evil.example/x.png>"]
    (run / "summary.json").write_text(json.dumps(summary))
    page = write_run_report(run)
    text = page.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&lt;b&gt;x&lt;/b&gt;&quot;&#x27;.mp4" in text
    assert_self_contained(page, allowed=set())  # no script, no <img src=http...>


def test_many_bins_are_merged_into_at_most_max_bars():
    bins = [{"start_s": 60 * i, "total": 3, "normal": 2, "anomaly": 1, "unknown": 0} for i in range(1000)]
    bars = display_bins({"bin_seconds": 60, "bins": bins})
    assert len(bars) <= MAX_BARS and sum(b.total for b in bars) == 3000 and sum(b.anomaly for b in bars) == 1000
    assert bars[1].start_s == bars[0].seconds == 60 * 6  # 6 minutes a bar
    svg = counts_chart(bars, judged=True)
    assert len(re.findall(r'id="counts-bar-anomaly-\d+"', svg)) == len(bars)


def test_report_failure_does_not_fail_the_run(make_clip, tmp_path, monkeypatch):
    import conveyor_qc.report
    from conveyor_qc.run.job import run_video

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(conveyor_qc.report, "write_run_report", broken)
    warned: list[str] = []
    result = run_video(make_clip("cookies", seed=5, seconds=4).video, tmp_path / "run", video=False, warn=warned.append)
    assert result.summary["complete"] and (tmp_path / "run" / "summary.json").is_file()
    assert not (tmp_path / "run" / "report.html").exists()
    assert [w for w in warned if w.startswith("report.html not written:") and "No space left" in w], warned


# --- the command -----------------------------------------------------------------------


def test_report_command(runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["report", "--help"])
    assert done.value.code == 0 and "report.html" in capsys.readouterr().out

    run = tmp_path / "run"
    shutil.copytree(runs.judged, run, ignore=shutil.ignore_patterns("report.html"))
    assert main(["report", str(run)]) == 0
    assert f"report -> {run / 'report.html'}" in capsys.readouterr().out
    assert len(card_ids(run / "report.html")) == summary_of(run)["anomalies"]

    for bad, says in (
        (tmp_path / "nowhere", "does not exist"),
        (run / "summary.json", "is a file, not a run folder"),
        (run / "crops", "is not a run folder (no summary.json)"),
    ):
        assert main(["report", str(bad)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("conveyor-qc report: error: ") and says in err, err
    (run / "summary.json").write_text("{ damaged")
    assert main(["report", str(run)]) == 1
    assert "summary.json: damaged" in capsys.readouterr().err
    with pytest.raises(ReportError, match="not a run folder"):
        write_run_report(tmp_path)


# --- a batch's page ------------------------------------------------------------------------


def test_batch_report_lists_each_video(browser, runs, tmp_path):  # noqa: F811
    from conveyor_qc.run.batch import run_batch

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("line1", "line2"):
        shutil.copy(runs.clip.video, videos / f"{name}.mp4")
    (videos / "notes.mp4").write_text("not a video\n")
    out = tmp_path / "batch"
    report = run_batch([str(videos / "*.mp4")], out, workers=1, model=runs.model, retries=0)
    assert [j.status for j in report.jobs] == ["done", "done", "failed"]
    page = out / "report.html"
    assert page.is_file(), "batch writes its report.html at the end"
    batch = json.loads((out / "batch.json").read_text())

    open_report(browser, page)
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#videos tr.video')].map(r => [r.dataset.name, r.dataset.status, "
        "r.querySelector('td.name a') ? r.querySelector('td.name a').getAttribute('href') : null])"
    )
    assert rows == [
        ["line1", "done", "line1/report.html"],
        ["line2", "done", "line2/report.html"],
        ["notes", "failed", None],
    ]
    assert figure(browser, "videos") == "3"
    assert figure(browser, "anomalies") == str(batch["total"]["anomalies"])
    assert "failed" in browser.find_element("css selector", "tr[data-name='notes']").text
    assert len(browser.find_elements("css selector", "svg#rates [id^='rates-bar-']")) == 2
    assert_self_contained(page, allowed={"line1/report.html", "line2/report.html"})

    browser.find_element("link text", "line2").click()  # each video's own page, from the batch's
    wait_for(lambda: browser.execute_script("return document.body.classList.contains('run-report')"), what="run page")
    assert figure(browser, "anomalies") == str(summary_of(out / "line2")["anomalies"])

    # made again by the command; --model goes with a run folder
    page.unlink()
    assert main(["report", str(out)]) == 0 and page.is_file()
    assert main(["report", str(out), "--model", str(runs.model)]) == 2
    with pytest.raises(ReportError, match="not a batch folder"):
        write_batch_report(out / "line1")


def test_charts_drawn_on_two_threads_at_once_are_the_charts_drawn_alone():
    """Two runs' reports on threads of one program: matplotlib's settings are the process's, and
    each chart's own (text as text, its ids' salt) were taken by the other chart or left in place
    for the program's own plots."""
    import threading

    import matplotlib

    from conveyor_qc.report.charts import rate_chart

    counts = {"bin_seconds": 1, "bins": [{"start_s": i, "normal": i % 3, "anomaly": i % 2} for i in range(30)]}
    bars = display_bins(counts)
    alone = counts_chart(bars, True), rate_chart(bars, 0.3)
    before = dict(matplotlib.rcParams)
    drawn: list[tuple[str, str]] = []

    def draw() -> None:
        drawn.extend((counts_chart(bars, True), rate_chart(bars, 0.3)) for _ in range(10))

    threads = [threading.Thread(target=draw) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(drawn) == 20 and all(pair == alone for pair in drawn)
    assert dict(matplotlib.rcParams) == before
