"""``train``, ``predict`` and ``evaluate-model``: anomaly models."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from conveyor_qc.anomaly.base import ModelError, read_image
from conveyor_qc.anomaly.heatmap import overlay_png, peak
from conveyor_qc.anomaly.model import evaluate_model, load_model, train_model
from conveyor_qc.cli.exit_codes import EXIT_OK
from conveyor_qc.io.atomic import atomic_write_bytes, check_writable_directory


def _print_evaluation(r: dict) -> None:
    print(
        f"{r['images']} images: precision {r['precision']:.3f}  recall {r['recall']:.3f}  F1 {r['f1']:.3f}  "
        f"(tp {r['tp']}, fp {r['fp']}, fn {r['fn']}, tn {r['tn']}; anomaly is positive)"
    )


def cmd_train(args: argparse.Namespace) -> int:
    options = {"one_class": True} if args.one_class else {}
    if args.backend == "lookout":
        lookout = {
            "s3": args.s3,
            "project": args.project,
            "region": args.region,
            "endpoint_url": args.endpoint_url,
            "s3_endpoint": args.s3_endpoint,
        }
        options.update({k: v for k, v in lookout.items() if v is not None})
    elif any(v is not None for v in (args.s3, args.project, args.region, args.endpoint_url, args.s3_endpoint)):
        raise ModelError("--s3, --project, --region, --endpoint-url and --s3-endpoint are for --backend lookout")
    meta = train_model(args.manifest, args.out, backend=args.backend, test_manifest=args.test_manifest, **options)
    t = meta.get("trained_on", {})
    extra = (
        f" ({meta['mode']}, {t.get('normal', '?')} normal, {t.get('anomaly', '?')} anomaly images)"
        if "mode" in meta
        else ""
    )
    print(f"model ({meta.get('backend', args.backend)}){extra} -> {args.out}")
    if isinstance(meta.get("test"), dict) and "tp" in meta["test"]:
        _print_evaluation(meta["test"])
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    with load_model(args.model) as model:
        out_dir = None
        if args.heatmap is not None:
            if not model.has_heat_maps:
                raise ModelError(
                    f"{args.model}: this model says only whether, not where (--heatmap needs a "
                    "local model of format 2: train it again with this release; or an ONNX model "
                    "whose output is a map)"
                )
            out_dir = check_writable_directory(Path(args.heatmap), "heat map folder")
        names: set[str] = set()
        for path in args.images:
            image = read_image(path)
            v, heat = model.explain([image])[0] if out_dir is not None else (model.predict([image])[0], None)
            record: dict = {"path": path, "label": v.label, "score": round(v.score, 4)}
            if out_dir is not None:
                record.update(_write_heat_map(out_dir, Path(path), image, heat, names))
            if args.json:
                print(json.dumps(record))
            else:
                extra = (
                    f"\t{record['heatmap']}\tpeak {record['peak'][0]},{record['peak'][1]}"
                    if "heatmap" in record
                    else ""
                )
                print(f"{path}\t{v.label}\t{v.score:.4f}{extra}")
    return EXIT_OK


def _write_heat_map(out_dir: Path, path: Path, image, heat, taken: set[str]) -> dict:
    """Write one image's heat-map picture (a unique name per call); its path and peak."""
    name, n = f"{path.stem}-heat.png", 1
    while name in taken:
        n += 1
        name = f"{path.stem}-{n}-heat.png"
    taken.add(name)
    atomic_write_bytes(out_dir / name, overlay_png(image, heat))
    record: dict = {"heatmap": str(out_dir / name)}
    record["peak"] = list(peak(heat)) if heat is not None else None
    return record


def cmd_evaluate_model(args: argparse.Namespace) -> int:
    r = evaluate_model(args.model, args.manifest)
    print(json.dumps(r, indent=2) if args.json else "", end="\n" if args.json else "")
    if not args.json:
        _print_evaluation(r)
    return EXIT_OK
