"""``conveyor-qc batch``: many videos, one ``run`` each, as tasks on Dask distributed.

Each video is one task, :func:`run_one` (``run_video`` into ``DIR/<name>/``, exactly as
``conveyor-qc run`` writes it), on a local cluster of worker processes started here or on an
existing cluster named by its scheduler's address. The client hands out no more tasks than the
cluster has worker threads, longest videos first, so a worker holds only the video it is running:
when a worker process dies, the video it ran is the only one blamed, and is run again.
``DIR/batch.json`` sums the videos up and is rewritten (atomically) as each one finishes.
See docs/batch.md.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor_qc.anomaly.model import load_model
from conveyor_qc.config import Config
from conveyor_qc.errors import ConveyorQCError
from conveyor_qc.io.atomic import atomic_write_text
from conveyor_qc.run.job import judged, run_video
from conveyor_qc.run.outputs import REPORT_NAME, OutputError
from conveyor_qc.run.provenance import model_identity, source_identity
from conveyor_qc.run.video import quiet_decoder_logs, usable_cores
from conveyor_qc.version import __version__

__all__ = [
    "BATCH_FILE",
    "DEFAULT_RETRIES",
    "BatchError",
    "BatchReport",
    "VideoJob",
    "completed_figures",
    "expand_inputs",
    "output_names",
    "run_batch",
    "run_one",
]

BATCH_FILE = "batch.json"
BATCH_FORMAT = "conveyor-qc-batch"
DEFAULT_RETRIES = 2
#: Seconds to wait for an existing cluster's scheduler to answer.
CONNECT_TIMEOUT = 10.0

#: progress(line): one line of text per event (a video finished, a worker lost, the cluster up).
Progress = Callable[[str], None]


class BatchError(ConveyorQCError, ValueError):
    """The batch cannot start (no video matched, a folder given, no scheduler at the address).
    The message names the problem; nothing has been written."""


class TaskError(Exception):
    """A video's run failed on its worker. Carries the message and the original exception's type
    name only, so it always travels back to the client (not every exception unpickles)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message, kind)
        self.message, self.kind = message, kind

    def __str__(self) -> str:
        return self.message


@dataclass
class VideoJob:
    video: Path  # absolute
    name: str  # its folder under DIR
    out: Path
    identity: dict | None  # source_identity(video) when the batch started
    status: str = "pending"  # pending | done | skipped | failed | interrupted
    figures: dict | None = None  # objects, anomalies, counted, frames, fps, ... (done / skipped)
    error: str | None = None
    error_type: str | None = None
    worker: str | None = None
    worker_losses: int = 0

    def record(self) -> dict:
        entry: dict[str, Any] = {"name": self.name, "video": str(self.video), "out": self.name, "status": self.status}
        entry.update({k: (self.figures or {}).get(k) for k in _FIGURE_KEYS})
        entry.update(
            {
                "worker": self.worker,
                "worker_losses": self.worker_losses,
                "error": self.error,
                "error_type": self.error_type,
            }
        )
        return entry


_FIGURE_KEYS = (
    "objects",
    "anomalies",
    "counted",
    "frames",
    "video_seconds",
    "processing_seconds",
    "fps",
    "ended_early",
)
_SUMMED = ("objects", "anomalies", "counted", "frames")


@dataclass
class BatchReport:
    jobs: list[VideoJob]
    out_dir: Path
    interrupted: bool = False
    wall_seconds: float = 0.0
    cluster: dict = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for j in self.jobs if j.status == status)

    @property
    def failed(self) -> list[VideoJob]:
        return [j for j in self.jobs if j.status == "failed"]

    @property
    def ended_early(self) -> list[VideoJob]:
        return [j for j in self.jobs if j.figures and j.figures.get("ended_early")]

    def totals(self) -> dict:
        with_results = [j.figures for j in self.jobs if j.figures is not None]
        total: dict[str, Any] = {"videos": len(self.jobs)}
        total.update({s: self.count(s) for s in ("done", "skipped", "failed", "interrupted", "pending")})
        total.update({k: sum(f[k] for f in with_results) for k in _SUMMED})
        processed = sum(j.figures["frames"] for j in self.jobs if j.status == "done" and j.figures is not None)
        total["frames_processed"] = processed  # by this batch (skipped videos' frames were not)
        total["wall_seconds"] = round(self.wall_seconds, 3)
        total["fps"] = round(processed / self.wall_seconds, 2) if self.wall_seconds > 0 else 0.0
        return total


# --- inputs and names ------------------------------------------------------------------------------


def expand_inputs(patterns: Iterable[str]) -> list[Path]:
    """Video files from paths and glob patterns (``*``, ``?``, ``[...]``; ``**`` for any depth),
    in the order given, each pattern's matches sorted, duplicates dropped. A pattern that
    matches no file, a path that does not exist, or a folder is a :class:`BatchError`."""
    videos: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = [Path(m) for m in sorted(glob.glob(pattern, recursive=True)) if Path(m).is_file()]
            if not matches:
                raise BatchError(f"no video file matches {pattern!r}")
        else:
            path = Path(pattern)
            if not path.exists():
                raise BatchError(f"video not found: {pattern}")
            if path.is_dir():
                raise BatchError(f"{pattern} is a folder: name its videos, e.g. '{path / '*.mp4'}' (quoted)")
            matches = [path]
        for m in matches:
            m = m.absolute()
            if m not in seen:
                seen.add(m)
                videos.append(m)
    if not videos:
        raise BatchError("no video given")
    return videos


def output_names(videos: list[Path]) -> list[str]:
    """Each video's folder name under DIR: its file name without the extension. Videos of one
    batch that share that name are told apart by their paths below the deepest folder they share
    ('/' becoming '__'): day1/line3.mp4 and day2/line3.mp4 -> day1__line3, day2__line3; the
    extension stays only where it alone differs (line3.mp4, line3.avi). A name still taken
    (or 'batch.json', 'report.html': the batch's own files) gets '~2', '~3', ... in the order given."""
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(videos):
        groups.setdefault(v.stem.casefold(), []).append(i)  # casefold: case-insensitive file systems
    names = [v.stem for v in videos]
    for members in groups.values():
        if len(members) < 2:
            continue
        paths = [videos[i] for i in members]
        common = Path(os.path.commonpath([str(p.parent) for p in paths]))
        relative = [p.relative_to(common) for p in paths]
        stems = ["__".join(r.with_suffix("").parts) for r in relative]
        if len({s.casefold() for s in stems}) < len(stems):
            stems = ["__".join(r.parts) for r in relative]
        for i, s in zip(members, stems):
            names[i] = s
    taken: set[str] = {BATCH_FILE.casefold(), REPORT_NAME.casefold()}
    unique = []
    for name in names:
        candidate, n = name, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{name}~{n}"
        taken.add(candidate.casefold())
        unique.append(candidate)
    return unique


# --- is a video done already? ----------------------------------------------------------------------


def _figures(summary: dict) -> dict:
    return {
        "objects": summary["objects"],
        "anomalies": summary["anomalies"],
        "judged": judged(summary),  # without a model, 0 anomalies means not judged
        "counted": summary["counts"]["total"],
        "frames": summary["frames"],
        "video_seconds": summary["video_seconds"],
        "processing_seconds": summary["processing_seconds"],
        "fps": summary["fps"],
        "ended_early": bool(summary["ended_early"]),
    }


def completed_figures(job: VideoJob, config_json: dict, model_id: dict | None) -> dict | None:
    """The figures of ``job``'s earlier run when its results are complete and current, else None.

    Complete and current: ``summary.json`` (which ``run`` writes last) is there with
    ``tracks.txt`` and ``objects.csv``, and with ``annotated.mp4`` when the settings write one
    (a run killed before its video was finished is recovered with ``video_lost``: run again),
    the run was not interrupted, and it names this video (absolute path), its size and
    modification time (``input``), the same settings (``config``) and the same model
    (``model``: folder and model.json's sha256). A run of a truncated file that ended early
    counts: running it again would read the same frames.
    """
    try:
        summary = json.loads((job.out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("interrupted") is not False:
        return None
    if not ((job.out / "tracks.txt").is_file() and (job.out / "objects.csv").is_file()):
        return None
    wants_video = (config_json.get("output") or {}).get("video", True)
    if summary.get("video_lost") or (wants_video and not (job.out / "annotated.mp4").is_file()):
        return None
    same = (
        summary.get("source") == str(job.video)
        and job.identity is not None
        and summary.get("input") == job.identity
        and summary.get("config") == config_json
        and summary.get("model") == model_id
    )
    if not same:
        return None
    try:
        return _figures(summary)
    except (KeyError, TypeError):
        return None


# --- on the workers --------------------------------------------------------------------------------


def dask_setup(worker) -> None:
    """Ctrl-C at a terminal reaches every process of the group: the local cluster's workers ignore
    it, and the client, which does not, stops the batch and closes them. Their stderr is the
    terminal's too: FFmpeg's and OpenCV's own warnings are silenced there, as ``run`` silences
    them (a video's error comes back to the client and is told once, in its own words)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_decoder_logs()


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def run_one(name: str, video: str, out_dir: str, config: dict, model: str | None) -> dict:
    """One video's ``run`` (the task each worker runs); returns its figures and the worker's address."""
    try:
        result = run_video(
            video,
            out_dir,
            Config.from_dict(config, source="batch settings"),
            model=model,
        )
    except Exception as exc:  # noqa: BLE001  any failure travels back as a TaskError (not every one unpickles)
        raise TaskError(str(exc) or type(exc).__name__, type(exc).__name__) from None
    return {**_figures(result.summary), "worker": _worker_address()}


# --- the batch -------------------------------------------------------------------------------------


def _check_output_dir(out_dir: Path) -> None:
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(f"output folder {out_dir} exists and is not a folder")
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from None


def _check_address(address: str) -> None:
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except ValueError as exc:
        raise BatchError(f"not a scheduler address: {address!r} ({exc}); e.g. tcp://HOST:8786") from None


class _Cluster:
    """A client on a local cluster started here (closed with it) or on an existing scheduler."""

    def __init__(self, scheduler: str | None, workers: int | None, connect_timeout: float = CONNECT_TIMEOUT):
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise BatchError(
                "batch runs on Dask distributed, which is not installed: "
                "pip install 'conveyor-qc[batch]' (or: pip install distributed)"
            ) from None

        self.cluster = None
        if scheduler:
            _check_address(scheduler)  # a half-made Client of a bad address hangs 30 s in its __del__
            try:
                self.client = Client(scheduler, timeout=connect_timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise BatchError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
            self.description = {"scheduler": self.client.scheduler.address, "local": False}
            return
        n = workers or usable_cores()
        self.cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
            # A worker death fails its task at once (KilledWorker) and this client decides whether
            # to run it again: the retry count is ours (--retries), not the scheduler's default 3.
            scheduler_kwargs={"allowed_failures": 0},
            # No Dask memory limit: a task holds no Dask data to spill, and being killed near a
            # limit would only be retried into the same death. The OS still guards the machine.
            memory_limit=0,
            # dask_setup: the workers leave Ctrl-C to the client; and the preloads the Dask
            # configuration names (distributed.worker.preload), as Dask's own workers would run.
            preload=[__name__, *dask.config.get("distributed.worker.preload", [])],
        )
        try:
            self.client = Client(self.cluster, set_as_default=False)
        except BaseException:
            self.cluster.close()
            raise
        self.description = {"scheduler": self.cluster.scheduler_address, "local": True, "workers": n}

    def threads(self) -> int:
        return sum(self.client.nthreads().values())

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def run_batch(
    inputs: Iterable[str],
    out_dir: str | Path,
    config: Config | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    model: str | Path | None = None,
    retries: int = DEFAULT_RETRIES,
    force: bool = False,
    progress: Progress | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> BatchReport:
    """Run every video of ``inputs`` (paths and glob patterns) into ``out_dir/<name>/`` on Dask.

    Bad input (no match, a folder, a bad model, an unwritable ``out_dir``, no scheduler at
    ``scheduler``) raises before anything is written. A video that fails is reported in the
    result and in batch.json, and the others go on. Ctrl-C stops the batch: the cluster is
    closed, batch.json is written with what finished, and the report says ``interrupted``.
    """
    config = config if config is not None else Config()
    config.validate()
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise BatchError(f"retries must be a whole number >= 0, not {retries!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise BatchError(f"workers must be a whole number >= 1, not {workers!r}")
    if scheduler and workers is not None:
        raise BatchError("--workers sizes the local cluster; an existing cluster (--scheduler) has its own")
    emit = progress or (lambda line: None)
    out_dir = Path(out_dir).absolute()
    videos = expand_inputs(inputs)
    model_path = None
    if model is not None:
        model_path = str(Path(model).absolute())
        load_model(model_path).close()  # a missing or damaged model fails here, not once per video

    config_json = json.loads(json.dumps(config.to_dict()))  # as summary.json holds it
    model_id = model_identity(model_path)
    jobs = [
        VideoJob(video=v, name=n, out=out_dir / n, identity=source_identity(v))
        for v, n in zip(videos, output_names(videos))
    ]
    report = BatchReport(jobs=jobs, out_dir=out_dir)
    if not force:
        for job in jobs:
            figures = completed_figures(job, config_json, model_id)
            if figures is not None:
                job.status, job.figures = "skipped", figures
    todo = [j for j in jobs if j.status == "pending"]
    meta = {
        "retries": retries,
        "force": force,
        "config": config_json,
        "model": model_id,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }

    def write(state: str) -> None:
        _write_batch_json(report, meta, state)
        if state != "running":  # the batch's report.html (docs/report.md): its failure fails no video
            try:
                from conveyor_qc.report import write_batch_report

                write_batch_report(out_dir)
            except Exception as exc:  # noqa: BLE001
                emit(f"warning: {out_dir / 'report.html'} not written: {exc}")

    if len(todo) < len(jobs):
        done = len(jobs) - len(todo)
        emit(
            f"{done} of {_videos(len(jobs))} already {'has' if done == 1 else 'have'} complete results: "
            f"skipped (--force redoes {'it' if done == 1 else 'them'})"
        )
    if not todo:
        _check_output_dir(out_dir)
        write("finished")
        return report

    start = time.perf_counter()
    try:
        cluster = _Cluster(
            scheduler, workers, connect_timeout
        )  # an unreachable scheduler fails here: nothing written yet
    except KeyboardInterrupt:
        report.interrupted = True
        for job in todo:
            job.status = "interrupted"
        _check_output_dir(out_dir)
        write("interrupted")
        return report
    try:
        _check_output_dir(out_dir)
    except BaseException:
        cluster.close()
        raise
    try:
        report.cluster = cluster.description
        n = cluster.description.get("workers")
        where = (
            f"a local cluster of {n} worker process{'es' if n != 1 else ''}"
            if cluster.description["local"]
            else f"the cluster at {cluster.description['scheduler']}"
        )
        emit(f"{_videos(len(todo))} to run on {where}")
        write("running")
        start = time.perf_counter()
        _run_jobs(cluster, todo, report, config_json, model_path, retries, emit, lambda: write("running"), start)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        report.wall_seconds = time.perf_counter() - start
        with contextlib.suppress(Exception):  # the report matters more than a clean shutdown
            cluster.close()
        if report.interrupted:
            # A worker may have finished a video whose result the client had not collected yet
            # (or finished it while the cluster closed): its folder, not the future, says.
            for job in todo:
                if job.status == "pending":
                    figures = completed_figures(job, config_json, model_id)
                    job.status, job.figures = ("done", figures) if figures is not None else ("interrupted", None)
        write("interrupted" if report.interrupted else "finished")
    return report


def _run_jobs(
    cluster: _Cluster,
    todo: list[VideoJob],
    report: BatchReport,
    config_json: dict,
    model_path: str | None,
    retries: int,
    emit: Progress,
    snapshot: Callable[[], None],
    start: float,
) -> None:
    from distributed import KilledWorker, as_completed

    client = cluster.client
    # Longest first (by file size): the last videos to start are the short ones, so the cluster
    # runs out of work nearly together.
    queue = deque(sorted(todo, key=lambda j: -(j.identity or {}).get("bytes", 0)))
    running: dict = {}  # future -> job
    finished = sum(1 for j in report.jobs if j.status != "pending")
    total = len(report.jobs)
    pending_results = as_completed(loop=client.loop)  # our client is not the default one
    capacity, capacity_checked = 1, 0.0

    def submit(job: VideoJob) -> None:
        future = client.submit(
            run_one,
            job.name,
            str(job.video),
            str(job.out),
            config_json,
            model_path,
            key=f"conveyor-qc-batch-{job.name}-{uuid.uuid4().hex[:8]}",
            retries=retries,
            pure=False,
        )
        running[future] = job
        pending_results.add(future)

    try:
        while queue or running:
            if queue and time.monotonic() - capacity_checked > 1.0:
                capacity, capacity_checked = max(1, cluster.threads()), time.monotonic()
            while queue and len(running) < capacity:
                submit(queue.popleft())
            ready = pending_results.next_batch(block=False)
            if not ready:
                time.sleep(0.1)
                continue
            for future in ready:
                job = running.pop(future)
                if future.status == "finished":
                    result = future.result()
                    job.worker = result.pop("worker")
                    job.status, job.figures = "done", result
                else:
                    exc = future.exception() if future.status == "error" else None
                    if isinstance(exc, KilledWorker) and job.worker_losses < retries:
                        job.worker_losses += 1
                        emit(
                            f"{job.name}: its worker process died (killed, out of memory or crashed); "
                            f"running it again ({job.worker_losses} of {retries})"
                        )
                        queue.appendleft(job)
                        continue
                    job.status = "failed"
                    if isinstance(exc, KilledWorker):
                        job.worker_losses += 1
                        job.error_type = "KilledWorker"
                        job.error = (
                            f"the worker process running it died (killed, out of memory or crashed) "
                            f"{job.worker_losses} time(s); given up"
                        )
                    elif isinstance(exc, TaskError):
                        job.error, job.error_type = exc.message, exc.kind
                    elif exc is not None:
                        job.error, job.error_type = str(exc) or type(exc).__name__, type(exc).__name__
                    else:
                        job.error = f"the cluster dropped the task ({future.status}: scheduler restarted or lost?)"
                        job.error_type = "CancelledError"
                future.release()
                finished += 1
                report.wall_seconds = time.perf_counter() - start
                emit(_progress_line(job, finished, total, report.totals()["fps"]))
                snapshot()
    except BaseException:
        if running:
            with contextlib.suppress(Exception):  # an existing cluster would otherwise run them on
                client.cancel(list(running))
        raise


def _videos(n: int) -> str:
    """``1 video``, ``3 videos``."""
    return f"{n} video{'' if n == 1 else 's'}"


def _progress_line(job: VideoJob, finished: int, total: int, cluster_fps: float) -> str:
    head = f"[{finished}/{total}] {job.name}"
    if job.status == "failed":
        return f"{head}: failed: {job.error}"
    f = job.figures
    assert f is not None, "a job that did not fail has its figures"
    early = " (the video ended before the frames it announced)" if f["ended_early"] else ""
    verdicts = f"{f['anomalies']} anomalies" if f.get("judged", True) else "not judged"
    return (
        f"{head}: {f['objects']} objects ({verdicts}), {f['frames']} frames at "
        f"{f['fps']:.0f} fps{early}; cluster {cluster_fps:.0f} fps"
    )


def _write_batch_json(report: BatchReport, meta: dict, state: str) -> None:
    doc = {
        "format": BATCH_FORMAT,
        "version": 1,
        "conveyor_qc_version": __version__,
        "state": state,  # running | finished | interrupted
        "started_at": meta["started_at"],
        "finished_at": None if state == "running" else datetime.now(UTC).isoformat(timespec="seconds"),
        "out": str(report.out_dir),
        "cluster": report.cluster or None,
        "retries": meta["retries"],
        "force": meta["force"],
        "config": meta["config"],
        "model": meta["model"],
        "total": report.totals(),
        "videos": [j.record() for j in report.jobs],
    }
    atomic_write_text(report.out_dir / BATCH_FILE, json.dumps(doc, indent=2) + "\n")
