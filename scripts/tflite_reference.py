#!/usr/bin/env python3
"""Reference outputs of the MLPerf Tiny int8 .tflite models from TFLite's *reference* kernels.

For each model in models/tflite-ref/ this runs the LiteRT interpreter with the reference op
resolver (BUILTIN_REF, the kernels TFLite Micro and CMSIS-NN claim bit-exactness with) on the
model's real samples (where there are any, quantized with the model's input scale and zero
point) followed by 20 seeded random int8 inputs over the full range -128..127, and writes
models/tflite-ref/<name>.ref.npz with:

  inputs   int8 [N, *input shape]   the int8 input tensors, real samples first
  outputs  int8 [N, *output shape]  the int8 output tensors
  real     int64 scalar             how many of the N inputs are real samples
  logits   int8 [N, *logits shape]  for models ending in SOFTMAX: its int8 input (the layer before
                                    it), which shows one-step differences the probabilities hide

tests/tflite_import.rs compares Ember's output bytes on the imported models with these.
Not run by CI. Usage (from the repository root):

  python3 -m venv /tmp/litert && /tmp/litert/bin/pip install ai-edge-litert numpy
  /tmp/litert/bin/python scripts/tflite_reference.py [--samples DIR]

DIR holds the real sample files (default models/mlperf-tiny): kws/kws_input_float_1x49x10x1.npy,
ad/toycar_normal_id01_logmel_200x128.npy, sww/sww_calibration_samples.npz.
"""

import argparse
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "models" / "tflite-ref"
RANDOM_INPUTS = 20
SEED = 20251205
REAL_PER_MODEL = 10

MODELS = {
    "kws": "kws_ref_model_int8.tflite",
    "vww": "vww_96_int8.tflite",
    "ic": "ic_resnet8_int8.tflite",
    "ad": "ad01_int8.tflite",
    "sww": "sww_int8.tflite",
}


def quantize(x, scale, zero_point):
    """Float samples to int8 with the input tensor's quantization."""
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


def real_samples(name, samples, shape, scale, zero_point):
    """The model's real samples as int8 inputs of `shape` (possibly none)."""
    if name == "kws":
        mfcc = np.load(samples / "kws" / "kws_input_float_1x49x10x1.npy").astype(np.float32)
        return [quantize(mfcc.reshape(shape), scale, zero_point)]
    if name == "ad":
        spec = np.load(samples / "ad" / "toycar_normal_id01_logmel_200x128.npy").astype(np.float32)
        starts = np.linspace(0, spec.shape[0] - 5, REAL_PER_MODEL).astype(int)
        return [quantize(spec[s : s + 5].reshape(shape), scale, zero_point) for s in starts]
    if name == "sww":
        specs = np.load(samples / "sww" / "sww_calibration_samples.npz")["specs"].astype(np.float32)
        return [quantize(s.reshape(shape), scale, zero_point) for s in specs[:REAL_PER_MODEL]]
    return []


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=Path, default=ROOT / "models" / "mlperf-tiny")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    for name, file in MODELS.items():
        interpreter = Interpreter(
            model_path=str(OUT / file),
            experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
            experimental_preserve_all_tensors=True,
        )
        interpreter.allocate_tensors()
        (inp,) = interpreter.get_input_details()
        (out,) = interpreter.get_output_details()
        assert inp["dtype"] == np.int8 and out["dtype"] == np.int8, f"{name}: int8 input and output expected"
        shape = tuple(inp["shape"])
        scale, zero_point = inp["quantization"]
        real = real_samples(name, args.samples, shape, scale, zero_point)
        random = [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(RANDOM_INPUTS)]
        last = interpreter._get_ops_details()[-1]
        softmax_input = last["inputs"][0] if last["op_name"] == "SOFTMAX" else None
        inputs, outputs, logits = [], [], []
        for x in real + random:
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            inputs.append(x)
            outputs.append(interpreter.get_tensor(out["index"]).copy())
            if softmax_input is not None:
                logits.append(interpreter.get_tensor(softmax_input).copy())
        arrays = {"inputs": np.stack(inputs), "outputs": np.stack(outputs), "real": np.int64(len(real))}
        if logits:
            arrays["logits"] = np.stack(logits)
        path = OUT / f"{name}.ref.npz"
        np.savez_compressed(path, **arrays)
        print(f"{path.relative_to(ROOT)}: {len(real)} real + {len(random)} random inputs")


if __name__ == "__main__":
    main()
