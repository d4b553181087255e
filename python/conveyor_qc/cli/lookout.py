"""``lookout STEP``: each step of the Lookout for Vision lifecycle as a command (docs/lookout.md).

Before each network call a step says on stderr (not with -q) whom it asks for what, so a slow or
unreachable endpoint is never silent; the client's waits are bounded (lookout.lookout_client, with
--timeout shortening each try's connect and read timeouts) and a failure is one line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2

from conveyor_qc.anomaly import lookout
from conveyor_qc.anomaly.base import write_meta
from conveyor_qc.crops import CROP_SUFFIXES


def _collect_images(items: list[str]) -> list[Path]:
    out = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in CROP_SUFFIXES and q.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise lookout.LookoutError(f"{p}: no such image or folder")
    if not out:
        raise lookout.LookoutError("no PNG or JPEG images in " + ", ".join(items))
    return out


def cmd_lookout(args: argparse.Namespace) -> int:
    step = getattr(args, "lookout_command", None)
    if not step:
        print(
            "conveyor-qc lookout: give a step: create-project, upload, create-datasets, train, start, detect, "
            "stop, status (see --help)",
            file=sys.stderr,
        )
        return 2
    progress = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if step == "upload":  # S3 only: no Lookout client
        return _upload(args, progress)
    client = lookout.lookout_client(args.region, args.endpoint_url, retry_mode=args.retry_mode, timeout=args.timeout)
    return _STEPS[step](args, client, progress)


def _asking(progress, client, what: str) -> None:
    """One line before a network call: whom it asks, for what (an unreachable endpoint is never silent)."""
    if progress is not None:
        progress(f"asking {lookout.describe_endpoint(client)} {what}...")


def _upload(args, progress) -> int:
    src = Path(args.dataset)
    test: Path | None
    if src.is_dir():
        train, test = src / "train.manifest", src / "test.manifest"
        test = test if test.exists() else None
    else:
        train, test = src, Path(args.test) if args.test else None
    if progress is not None:
        endpoint = args.s3_endpoint or os.environ.get("AWS_ENDPOINT_URL_S3")
        progress(f"sending the dataset's changed files to {args.s3} (S3{f' at {endpoint}' if endpoint else ''})...")
    res = lookout.upload_manifests(
        train, args.s3, test_manifest=test, s3_endpoint=args.s3_endpoint, timeout=args.timeout
    )
    u = res["upload"]
    print(f"uploaded {u['uploaded']} file(s) ({u['bytes']} bytes), {u['skipped']} already there -> {u['url']}")
    print(f"train manifest: {res['train_manifest']}")
    if res["test_manifest"]:
        print(f"test manifest: {res['test_manifest']}")
    return 0


def _create_project(args, client, progress) -> int:
    _asking(progress, client, f"for project {args.project} (created if missing)")
    r = lookout.create_project(client, args.project)
    arn = f": {r['ProjectArn']}" if r.get("ProjectArn") else ""
    print(f"project {args.project} {'created' if r['created'] else 'exists'}{arn}")
    return 0


def _create_datasets(args, client, progress) -> int:
    base = args.s3.rstrip("/")
    manifests = f"{base}/train.manifest" + ("" if args.single else " and test.manifest")
    _asking(progress, client, f"for project {args.project}'s datasets (made from {manifests} if missing)")
    res = lookout.create_datasets(
        client,
        args.project,
        f"{base}/train.manifest",
        None if args.single else f"{base}/test.manifest",
        replace=args.replace,
        poll=args.poll,
        timeout=args.timeout or lookout.DEFAULT_TIMEOUTS["dataset"],
        progress=progress,
    )
    for side, d in res.items():
        st = d.get("ImageStats") or {}
        images = f", {st.get('Total', 0)} images ({st.get('Normal', 0)} normal, {st.get('Anomaly', 0)} anomaly)"
        print(f"{side} dataset: {d.get('Status')}" + (images if st else ""))
    return 0


def _train(args, client, progress) -> int:
    output = args.s3.rstrip("/") + "/model-output"
    _asking(progress, client, f"to train a model in project {args.project}")
    d = lookout.train_model(
        client,
        args.project,
        output,
        wait=not args.no_wait,
        poll=args.poll,
        timeout=args.timeout or lookout.DEFAULT_TIMEOUTS["train"],
        progress=progress,
    )
    perf = d.get("Performance") or {}
    scores = (
        f", F1 {perf['F1Score']:.3f}, precision {perf.get('Precision', 0):.3f}, recall {perf.get('Recall', 0):.3f}"
        if "F1Score" in perf
        else ""
    )
    print(f"model {d['ModelVersion']}: {d.get('Status')}{scores}")
    if args.out:
        meta = lookout.model_meta(
            client,
            args.project,
            d,
            s3={"dataset": args.s3.rstrip("/"), "output": output},
            image_size=[args.image_size, args.image_size],
            min_inference_units=1,
            **({"endpoint": args.endpoint_url} if args.endpoint_url else {}),
        )
        print(f"-> {write_meta(args.out, meta)}")
    return 0


def _start(args, client, progress) -> int:
    _asking(progress, client, f"to host model {args.model_version} of project {args.project}")
    started = lookout.start_model(
        client,
        args.project,
        args.model_version,
        min_units=args.min_units,
        max_units=args.max_units,
        poll=args.poll,
        timeout=args.timeout or lookout.DEFAULT_TIMEOUTS["start"],
        progress=progress,
    )
    print(
        f"model {args.model_version}: HOSTED{'' if started else ' (already)'}; billed by the hour until "
        f"`conveyor-qc lookout stop --project {args.project} --model-version {args.model_version}`"
    )
    return 0


def _stop(args, client, progress) -> int:
    _asking(progress, client, f"to stop hosting model {args.model_version} of project {args.project}")
    d = lookout.stop_model(
        client,
        args.project,
        args.model_version,
        wait=not args.no_wait,
        poll=args.poll,
        timeout=args.timeout or lookout.DEFAULT_TIMEOUTS["stop"],
        progress=progress,
    )
    print(f"model {args.model_version}: {d.get('Status')}")
    return 0


def _status(args, client, progress) -> int:
    _asking(progress, client, f"for project {args.project}'s datasets and models")
    s = lookout.project_status(client, args.project)
    if args.json:
        print(json.dumps(s, default=str))
        return 0
    print(f"project {s['project']}")
    for d in s["datasets"]:
        print(f"  {d['type']} dataset: {d['status']}" + (f" ({d['message']})" if d.get("message") else ""))
    for m in s["models"]:
        print(f"  model {m['version']}: {m['status']}" + (f" ({m['message']})" if m.get("message") else ""))
    return 0


def _cmd_detect(args, client, progress) -> int:
    images = _collect_images(args.images)
    size = (args.image_size, args.image_size)
    n_anomalous = 0

    def run() -> None:
        nonlocal n_anomalous
        for path in images:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise lookout.LookoutError(f"{path}: not an image OpenCV can read")
            body, ctype = lookout.encode_image(img, size, args.format)
            res = lookout.detect_anomalies(client, args.project, args.model_version, body, ctype)
            score = lookout.anomaly_score(res)
            label = "anomaly" if res.get("IsAnomalous") else "normal"
            n_anomalous += label == "anomaly"
            if args.json:
                print(
                    json.dumps(
                        {
                            "image": str(path),
                            "label": label,
                            "score": round(score, 6),
                            "confidence": res.get("Confidence"),
                        }
                    ),
                    flush=True,
                )
            else:
                print(f"{path}\t{label}\t{score:.4f}", flush=True)

    mv = f"model {args.model_version} of project {args.project}"
    if args.start:
        _asking(progress, client, f"to host {mv} for this run")
        with lookout.hosted(
            client,
            args.project,
            args.model_version,
            min_units=args.min_units,
            poll=args.poll,
            start_timeout=args.timeout or lookout.DEFAULT_TIMEOUTS["start"],
            progress=progress,
        ):
            _asking(progress, client, f"to judge {len(images)} image(s) with {mv}")
            run()
    else:
        _asking(progress, client, f"whether {mv} is hosted")
        status = lookout._describe_model(client, args.project, args.model_version).get("Status")
        if status != "HOSTED":
            raise lookout.LookoutError(
                f"model {args.model_version} is {status}, not hosted: run `conveyor-qc lookout start` "
                "first, or add --start (hosts it for this run only)"
            )
        _asking(progress, client, f"to judge {len(images)} image(s) with {mv}")
        run()
    if progress is not None:
        progress(f"{len(images)} image(s), {n_anomalous} anomalous")
    return 0


#: Each step's handler (upload needs no Lookout client: it is S3 only).
_STEPS = {
    "create-project": _create_project,
    "create-datasets": _create_datasets,
    "train": _train,
    "start": _start,
    "stop": _stop,
    "status": _status,
    "detect": _cmd_detect,
}
