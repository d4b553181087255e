"""``train``, ``predict`` and ``evaluate-model``: anomaly models."""

from __future__ import annotations

import argparse
import json

from conveyor_qc.anomaly.base import ModelError, read_image
from conveyor_qc.anomaly.model import evaluate_model, load_model, train_model
from conveyor_qc.cli.exit_codes import EXIT_OK


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
        for path in args.images:
            v = model.predict([read_image(path)])[0]
            if args.json:
                print(json.dumps({"path": path, "label": v.label, "score": round(v.score, 4)}))
            else:
                print(f"{path}\t{v.label}\t{v.score:.4f}")
    return EXIT_OK


def cmd_evaluate_model(args: argparse.Namespace) -> int:
    r = evaluate_model(args.model, args.manifest)
    print(json.dumps(r, indent=2) if args.json else "", end="\n" if args.json else "")
    if not args.json:
        _print_evaluation(r)
    return EXIT_OK
