#!/usr/bin/env python3
"""Quantise the fp32 all-MiniLM-L6-v2 ONNX graph to int8, shelf's default model.

ONNX Runtime's dynamic quantisation: every MatMul's weights are stored as
int8 with one scale per output channel (`per_channel=True`, `QInt8`), and
activations are quantised at run time. Per channel, because the default
per-tensor scales lost too much here (cosine to fp32 mean 0.93, min 0.86,
against 0.992 and 0.973 per channel, over 4,289 real chunks); `reduce_range`
lost more (0.79), and uint8 weights were slower on a CPU without VNNI.

Dynamic quantisation computes each activation's scale over the whole input
tensor, so a text's vector would depend on the other texts of its batch and
on padding. shelf therefore runs every text alone (embed/src/embedder.rs);
this script only makes the file.

The output is deterministic for a given fp32 input and onnxruntime version
(scripts/setup checks it against a pinned sha256).
"""

import argparse
import logging
import os

from onnxruntime.quantization import QuantType, quantize_dynamic


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fp32", required=True, help="the fp32 ONNX model (scripts/convert_minilm.py)")
    ap.add_argument("--out", required=True, help="path of the int8 ONNX file to write")
    args = ap.parse_args()

    # The quantiser logs a hint to run its shape-inference pre-pass first on
    # every run; the pinned output is made without that pass, so the hint is
    # noise in setup's output.
    logging.getLogger().setLevel(logging.ERROR)
    tmp = args.out + ".tmp.onnx"
    quantize_dynamic(args.fp32, tmp, per_channel=True, weight_type=QuantType.QInt8)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, int8 weights per channel, dynamic activations)")


if __name__ == "__main__":
    main()
