#!/usr/bin/env python3
"""Output SQNR of Ember's int8 models next to ONNX Runtime's `quantize_static` on the same
models and the same calibration and evaluation samples (docs/QUANTIZATION.md, "Against ONNX
Runtime"). Optional, not part of CI.

Requirements (the versions the published table was made with):
    python3 -m pip install onnxruntime==1.32.0 onnx==1.23.2 numpy==2.4.6

Usage, from the repository root:
    python3 scripts/ort_compare.py [--work DIR] [--tensors NAME ...] [MODEL ...]

MODEL names a line of models.txt (digits, ds_cnn, kws, vww, ic, ad, sww; default: all).
The script
1. writes every model's samples with `cargo run --release --example compare_data -- DIR/data`
   (so both quantizers read the same .npy files: DIR/data/NAME/calib.npy and eval.npy);
2. for ONNX Runtime: pre-processes the model as ORT recommends (`quant_pre_process`: shape
   inference and graph optimization, which folds BatchNormalization), then `quantize_static`
   in QDQ format, int8 activations and weights, per-channel weights, with MinMax and with
   Entropy calibration on calib.npy, and compares the quantized model run by ORT's CPU provider
   with the f32 model run by ORT;
3. for Ember: `ember-quantize quantize MODEL --calib calib.npy --calibration METHOD` with each
   method (defaults otherwise), and with min/max without equalization and bias correction;
   then `ember-quantize eval MODEL MODEL.ember --data eval.npy`, whose SQNR line compares the
   int8 model with the f32 model run by tract.
SQNR is 10 log10(sum r^2 / sum (r - q)^2) over every value of the first output of every
evaluation sample, as `ember-quantize eval` computes it.

--tensors NAME ... also prints the SQNR of those tensors of ORT's MinMax model against its f32
model over the calibration samples, to set beside `ember-quantize debug`'s cumulative column.
"""

import argparse
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMBER = os.path.join(ROOT, "target", "release", "ember-quantize")
# Ember's runs: the default (equalization and bias correction kept where they raise the output
# SQNR on the calibration samples) with each method, and plain min/max without either, the
# closest to ORT's MinMax.
EMBER_RUNS = {
    "minmax, no CLE/BC": ["--calibration", "minmax", "--equalize", "off", "--bias-correction", "off"],
    "minmax": ["--calibration", "minmax"],
    "percentile": ["--calibration", "percentile"],
    "entropy": ["--calibration", "entropy"],
    "mse": ["--calibration", "mse"],
}
ORT_METHODS = {"MinMax": CalibrationMethod.MinMax, "Entropy": CalibrationMethod.Entropy}


def run(cmd):
    """Runs `cmd` from the repository root and returns its standard output."""
    done = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout


class Samples(CalibrationDataReader):
    """Feeds the rows of an .npy file (first axis = samples) one at a time, batch axis kept."""

    def __init__(self, input_name, x):
        self.input_name, self.x, self.i = input_name, x, 0

    def get_next(self):
        if self.i == len(self.x):
            return None
        self.i += 1
        return {self.input_name: self.x[self.i - 1 : self.i]}

    def rewind(self):
        self.i = 0


def outputs(model_path, x, tensors=None):
    """The first output of `model_path` run by ORT on every sample of x, flattened; or, given
    `tensors`, the values of each of those tensors."""
    model = onnx.load(model_path)
    names = tensors or [model.graph.output[0].name]
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names if n not in known
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    runs = [session.run(names, {name: x[i : i + 1]}) for i in range(len(x))]
    values = [np.stack([r[k].ravel() for r in runs]) for k in range(len(names))]
    return values if tensors else values[0]


def sqnr(reference, values):
    r, q = reference.astype(np.float64), values.astype(np.float64)
    return 10.0 * np.log10((r * r).sum() / max(((r - q) ** 2).sum(), np.finfo(np.float64).tiny))


def ort_sqnr(onnx_path, data, work, tensors):
    """ORT's output SQNR with each calibration method; with `tensors`, also prints the SQNR of
    those tensors of the MinMax model over the calibration samples."""
    calib, evaluation = np.load(os.path.join(data, "calib.npy")), np.load(os.path.join(data, "eval.npy"))
    pre = os.path.join(work, "pre.onnx")
    quant_pre_process(onnx_path, pre)
    input_name = onnx.load(pre).graph.input[0].name
    reference = outputs(pre, evaluation)
    result = {}
    for name, method in ORT_METHODS.items():
        quantized = os.path.join(work, f"ort_{name.lower()}.onnx")
        quantize_static(
            pre,
            quantized,
            Samples(input_name, calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
        )
        result[name] = sqnr(reference, outputs(quantized, evaluation))
        if tensors and method == CalibrationMethod.MinMax:
            pairs = zip(tensors, outputs(pre, calib, tensors), outputs(quantized, calib, tensors))
            for tensor, r, q in pairs:
                print(f"ORT MinMax, {tensor} over the calibration samples: {sqnr(r, q):.2f} dB", file=sys.stderr)
    return result


def ember_sqnr(onnx_path, data, work):
    """Ember's output SQNR in each of EMBER_RUNS."""
    result = {}
    for i, (name, flags) in enumerate(EMBER_RUNS.items()):
        model = os.path.join(work, f"ember_{i}.ember")
        run([EMBER, "quantize", onnx_path, "--calib", os.path.join(data, "calib.npy"), "-o", model] + flags)
        report = run([EMBER, "eval", onnx_path, model, "--data", os.path.join(data, "eval.npy")])
        result[name] = float(re.search(r"^SQNR: (\S+) dB$", report, re.M).group(1))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model names (default: every model of models.txt)")
    parser.add_argument("--tensors", nargs="+", default=[], help="tensors of ORT's MinMax model to report")
    parser.add_argument("--work", default=os.path.join(ROOT, "target", "ort_compare"), help="working folder")
    args = parser.parse_args()
    data_root = os.path.join(args.work, "data")
    run(["cargo", "run", "--release", "--quiet", "--example", "compare_data", "--", data_root])
    run(["cargo", "build", "--release", "--quiet", "-p", "ember-quantize"])
    with open(os.path.join(data_root, "models.txt")) as f:
        models = dict(line.split() for line in f if line.strip())
    chosen = args.models or list(models)
    unknown = [m for m in chosen if m not in models]
    if unknown:
        sys.exit(f"unknown model(s) {unknown}: choose among {list(models)}")
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}")
    header = ["model", "eval samples"] + [f"ORT {m}" for m in ORT_METHODS] + [f"Ember {m}" for m in EMBER_RUNS]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in chosen:
        onnx_path, data = os.path.join(ROOT, models[name]), os.path.join(data_root, name)
        work = os.path.join(args.work, name)
        os.makedirs(work, exist_ok=True)
        theirs, ours = ort_sqnr(onnx_path, data, work, args.tensors), ember_sqnr(onnx_path, data, work)
        samples = len(np.load(os.path.join(data, "eval.npy"), mmap_mode="r"))
        cells = [f"{v:.2f}" for v in list(theirs.values()) + list(ours.values())]
        print(f"| {name} | {samples} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
