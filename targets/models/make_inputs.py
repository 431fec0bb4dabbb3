"""Writes a raw int8 input batch for ember-bench: the first N images of a float32 .npy,
quantized with the model input's scale and zero point (from `ember-quantize inspect`) the way
the Ember runtime does (round half away from zero, saturate), in the model's internal NHWC
layout.

    python3 make_inputs.py <images.npy> <count> <scale> <zero_point> <out.bin>
"""
import sys

import numpy as np

images, count, scale, zero_point, out = sys.argv[1:]
x = np.load(images)[: int(count)].astype(np.float32)
if x.ndim == 4:
    x = x.transpose(0, 2, 3, 1)  # NCHW -> NHWC
q = x / np.float32(scale)
q = np.sign(q) * np.floor(np.abs(q) + np.float32(0.5))
q = np.clip(q + int(zero_point), -128, 127).astype(np.int8)
q.tofile(out)
print(f"{out}: {q.shape[0]} samples of {q[0].size} int8 values")
