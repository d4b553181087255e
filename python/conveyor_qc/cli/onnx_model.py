"""``import-onnx``: a model folder from an ONNX graph trained elsewhere (docs/anomaly.md)."""

from __future__ import annotations

import argparse

from conveyor_qc.anomaly.onnx_model import import_onnx
from conveyor_qc.cli.exit_codes import EXIT_OK


def cmd_import_onnx(args: argparse.Namespace) -> int:
    output = int(args.output) if args.output is not None and args.output.isdigit() else args.output
    meta = import_onnx(
        args.onnx_file,
        args.out,
        kind=args.output_kind,
        threshold=args.threshold,
        calibrate=args.calibrate,
        raw_range=tuple(args.range) if args.range else None,
        size=args.input_size,
        colour=args.colour,
        divide_by=args.divide_by,
        mean=args.mean,
        std=args.std,
        layout=args.layout,
        resize=args.resize,
        input_name=args.input_name,
        output=output,
        anomaly_class=args.anomaly_class,
        reduce=args.reduce,
    )
    h, w = meta["input"]["size"]
    i, o = meta["input"], meta["output"]
    print(
        f"model (onnx: {o['kind']} {o['name']!r}, input {h}x{w} {i['colour']} {i['layout']}, "
        f"threshold {meta['threshold']:.6g}) -> {args.out}"
    )
    c = meta.get("calibration")
    if c:
        print(
            f"calibrated on {c['images']} images: precision {c['precision']:.3f}  recall {c['recall']:.3f}  "
            f"F1 {c['f1']:.3f}  (tp {c['tp']}, fp {c['fp']}, fn {c['fn']}, tn {c['tn']}; anomaly is positive)"
        )
    return EXIT_OK
