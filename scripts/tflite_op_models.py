#!/usr/bin/env python3
"""Tiny int8 TFLite models, one or a few operators each, and their reference-kernel outputs.

Each model is a tf.function of one or two operators, converted by TensorFlow's TFLite converter with
full-integer int8 quantization (int8 input and output, a seeded representative dataset), written to
models/tflite-ref/ops/<name>.tflite. The `edges` model keeps float input and output, so the
converter adds a QUANTIZE and a DEQUANTIZE at the model's edges. The converter writes tf.squeeze
as RESHAPE, so `squeeze`'s RESHAPE is rewritten as a SQUEEZE operator.

For each model, LiteRT's interpreter with the reference op resolver (BUILTIN_REF, the kernels
TFLite Micro and CMSIS-NN claim bit-exactness with) runs seeded random int8 inputs over the whole
range -128..127; a model of one unary operator also gets, as its first input, all 256 int8 values
(its input is [1, 256]), and `mean_all_sums` gets inputs whose channels have every possible
sum of its 25 int8 values. The outputs go to models/tflite-ref/ops/<name>.ref.npz with keys
`input0`, `input1`, ... (one per model input, rows = runs) and `output0` (int8; float32 for
`edges`, whose float inputs lie on whole and half steps of the input's quantization grid,
some beyond its range). tests/tflite_ops.rs checks Ember's bytes against them.

With the `tflite-micro` package installed, each model also runs on TFLite Micro's interpreter
and the script prints how many output bytes differ from LiteRT's reference kernels (nothing is
stored from it).

Not run by CI. Usage (from the repository root):

  python3 -m venv /tmp/tfops && /tmp/tfops/bin/pip install tensorflow-cpu ai-edge-litert numpy tflite-micro
  /tmp/tfops/bin/python scripts/tflite_op_models.py

Last run with Python 3.11, tensorflow-cpu 2.21.0, ai-edge-litert 2.3.0, tflite-micro
0.dev20261023182759 and numpy 2.4.6.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import flatbuffers
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tensorflow.lite.python import schema_py_generated as schema

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "models" / "tflite-ref" / "ops"
SEED = 20261205
RANDOM_INPUTS = 8
CALIBRATION_SAMPLES = 64


def hard_swish(x):
    """x · relu6(x + 3) / 6, the pattern the converter turns into HARD_SWISH."""
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


# name: (input shapes, function, float range of the representative inputs)
MODELS = {
    "logistic": ([[1, 256]], lambda x: tf.math.sigmoid(x), 8.0),
    "logistic_narrow": ([[1, 256]], lambda x: tf.math.sigmoid(x), 1.5),
    "tanh": ([[1, 256]], lambda x: tf.math.tanh(x), 4.0),
    "tanh_wide": ([[1, 256]], lambda x: tf.math.tanh(x), 20.0),
    "hard_swish": ([[1, 256]], hard_swish, 7.0),
    "hard_swish_narrow": ([[1, 256]], hard_swish, 2.0),
    "relu": ([[1, 256]], lambda x: tf.nn.relu(x), 3.0),
    "relu6": ([[1, 256]], lambda x: tf.nn.relu6(x), 9.0),
    "mean": ([[1, 5, 7, 8]], lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True), 2.0),
    "mean_large": ([[1, 12, 12, 4]], lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True), 5.0),
    "mean_flat": ([[1, 6, 4, 8]], lambda x: tf.reduce_mean(x, axis=[1, 2]), 2.0),
    "mean_all_sums": ([[1, 5, 5, 16]], lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True), 3.0),
    "mul": ([[1, 4, 4, 8], [1, 4, 4, 8]], lambda x, y: x * y, 3.0),
    "mul_broadcast": ([[1, 4, 4, 8], [1, 1, 1, 8]], lambda x, y: x * y, 3.0),
    "mul_relu6": ([[1, 4, 4, 8], [1, 4, 4, 8]], lambda x, y: tf.nn.relu6(x * y), 2.0),
    "add_relu_n1": ([[1, 4, 4, 8], [1, 4, 4, 8]], lambda x, y: tf.clip_by_value(x + y, -1.0, 1.0), 2.0),
    "max_pool": (
        [[1, 9, 9, 4]],
        lambda x: tf.nn.max_pool2d(x, ksize=3, strides=2, padding="SAME"),
        2.0,
    ),
    "pad": ([[1, 4, 5, 3]], lambda x: tf.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]]), 2.0),
    "concat": ([[1, 3, 3, 4], [1, 3, 3, 6]], lambda x, y: tf.concat([x, y], axis=3), 2.0),
    "squeeze": ([[1, 1, 1, 16]], lambda x: tf.nn.relu(tf.squeeze(x, axis=[1, 2])), 2.0),
    "edges": ([[1, 64]], lambda x: tf.math.tanh(x), 3.0),
}


def convert(name, shapes, fn, span):
    """The int8 .tflite bytes of `fn` over inputs of `shapes` (float edges for `edges`)."""
    specs = [tf.TensorSpec(s, tf.float32) for s in shapes]
    concrete = tf.function(fn).get_concrete_function(*specs)
    rng = np.random.default_rng(SEED)

    def representative():
        for _ in range(CALIBRATION_SAMPLES):
            yield [rng.uniform(-span, span, size=s).astype(np.float32) for s in shapes]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], tf.function(fn))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if name != "edges":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def quantized_scale(interpreter, float_input):
    """The scale of the int8 tensor that the QUANTIZE of `float_input` writes."""
    (quantize,) = [op for op in interpreter._get_ops_details() if list(op["inputs"]) == [float_input]]
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    return details[quantize["outputs"][0]]["quantization"][0]


def every_sum(shape):
    """Inputs [1, H, W, C] whose channels, taken together, have every possible sum of H·W int8
    values once (each channel's values as even as possible), C channels per input."""
    _, h, w, c = shape
    n = h * w
    sums = np.arange(-128 * n, 127 * n + 1)
    sums = np.concatenate([sums, np.full(-len(sums) % c, sums[-1])]).reshape(-1, c)
    cells = np.arange(n).reshape(n, 1, 1)
    # Channel sum s: the first s mod n cells hold floor(s / n) + 1, the others floor(s / n).
    values = sums // n + (cells < sums % n)
    return [v.reshape(h, w, c)[None].astype(np.int8) for v in values.transpose(1, 0, 2)]


def reshape_to_squeeze(tflite, dims):
    """The model with each RESHAPE rewritten as SQUEEZE of `dims` (the converter writes tf.squeeze
    as RESHAPE; SQUEEZE takes no shape input)."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite, 0))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SQUEEZE
    code.version = 1
    model.operatorCodes.append(code)
    for op in model.subgraphs[0].operators:
        if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.RESHAPE:
            op.opcodeIndex = len(model.operatorCodes) - 1
            op.inputs = op.inputs[:1]
            op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
            op.builtinOptions = schema.SqueezeOptionsT()
            op.builtinOptions.squeezeDims = dims
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def reference(path, rng):
    """Inputs and reference-kernel outputs of the model at `path`, and its operator names."""
    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    runs = []
    shape = tuple(inputs[0]["shape"])
    if len(inputs) == 1 and shape == (1, 256) and inputs[0]["dtype"] == np.int8:
        runs.append([np.arange(-128, 128, dtype=np.int8).reshape(1, 256)])
    if path.stem == "mean_all_sums":
        runs.extend([x] for x in every_sum(shape))
    for _ in range(RANDOM_INPUTS):
        run = []
        for d in inputs:
            if d["dtype"] == np.float32:
                # Whole and half steps of the input's quantization grid, some beyond its range.
                scale = quantized_scale(interpreter, d["index"])
                half_steps = rng.integers(-300, 300, size=d["shape"])
                run.append((half_steps / 2.0 * scale).astype(np.float32))
            else:
                run.append(rng.integers(-128, 128, size=d["shape"], dtype=np.int8))
        runs.append(run)
    arrays = {f"input{i}": np.concatenate([r[i] for r in runs]) for i in range(len(inputs))}
    outputs = []
    for run in runs:
        for d, x in zip(inputs, run):
            interpreter.set_tensor(d["index"], x)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]).copy())
    arrays["output0"] = np.concatenate(outputs)
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    return arrays, ops, len(runs)


def tflm_differences(path, arrays):
    """How many output values TFLite Micro's interpreter (`pip install tflite-micro`, if there)
    computes differently from LiteRT's reference kernels, as text."""
    try:
        from tflite_micro import runtime
    except ImportError:
        return "TFLite Micro not installed"
    interpreter = runtime.Interpreter.from_file(str(path))
    inputs = sorted(k for k in arrays if k.startswith("input"))
    expected = arrays["output0"]
    differing = 0
    for r in range(len(expected)):
        for i, key in enumerate(inputs):
            interpreter.set_input(arrays[key][r : r + 1], i)
        interpreter.invoke()
        got = interpreter.get_output(0)[0]
        differing += int((got.view(np.uint8) != expected[r].view(np.uint8)).sum())
    return f"TFLite Micro differs in {differing} of {expected.nbytes} output bytes"


def main():
    print(f"tensorflow {tf.__version__}")
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for name, (shapes, fn, span) in MODELS.items():
        path = OUT / f"{name}.tflite"
        tflite = convert(name, shapes, fn, span)
        path.write_bytes(reshape_to_squeeze(tflite, [1, 2]) if name == "squeeze" else tflite)
        arrays, ops, runs = reference(path, rng)
        np.savez_compressed(OUT / f"{name}.ref.npz", **arrays)
        tflm = tflm_differences(path, arrays)
        print(f"{path.relative_to(ROOT)}: {' '.join(ops)}; {runs} runs; {tflm}")


if __name__ == "__main__":
    main()
