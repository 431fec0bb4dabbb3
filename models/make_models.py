#!/usr/bin/env python3
"""Generate Ember's committed test models and data under models/.

This script is committed for reproducibility but is NOT run by CI: its
outputs (the .onnx / .npy / .npz files and README.md) are committed instead.

How to run (from the repository root; takes well under a minute on a laptop CPU):

    python3 -m pip install onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6 scikit-learn==1.9.1
    python3 models/make_models.py

It was last run with: Python 3.11.7, numpy 2.4.6, onnx 1.23.2,
onnxruntime 1.32.0, scikit-learn 1.9.1 (the versions actually used are also
written into models/README.md on every run).

What it writes (models/mlperf-tiny/ is owned elsewhere and never touched):

  models/digits/   a small CNN trained (hand-written numpy forward/backward,
                   fixed seeds) on scikit-learn's bundled load_digits() data,
                   plus test/calibration data and onnxruntime reference logits.
  models/ds_cnn/   a MobileNet-style depthwise-separable CNN trained the same
                   way on the digits upscaled to 16x16, and its calibration data.
  models/ops/      one small random-weight ONNX model per operator pattern,
                   each with <name>.npz holding 8 seeded inputs (input_0..7)
                   and the onnxruntime outputs (output_0..7); plus
                   unsupported.onnx (Sin + Einsum) for error-reporting tests.
  models/README.md description of every file.

Determinism: every random draw comes from numpy Generators with fixed seeds
(per-op-model seeds are derived from the model name with crc32, so adding a
model does not change the others). Training runs in float64 with plain numpy;
the exported weights are float32. BLAS differences between machines could in
principle change the last bits of the trained weights; the committed files are
the reference, not a re-run.
"""

import os
import platform
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
import sklearn
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS_DIR = os.path.join(HERE, "digits")
OPS_DIR = os.path.join(HERE, "ops")
IR_VERSION = 8  # enough for opsets 13 and 14; accepted by onnxruntime and tract
N_SAMPLES = 8  # random input samples per op model

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def make_model(name, nodes, inputs, outputs, inits, opset=13, doc=""):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="ember-make_models",
        producer_version="1",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    # Give graph outputs declared without a shape their inferred static shape.
    inferred = {v.name: v for v in model.graph.value_info}
    for out in model.graph.output:
        if not out.type.tensor_type.HasField("shape"):
            out.CopyFrom(inferred[out.name])
    keep = [v for v in model.graph.value_info
            if v.name not in {o.name for o in model.graph.output}]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    for v in list(model.graph.input) + list(model.graph.output) + keep:
        dims = v.type.tensor_type.shape.dim
        assert all(d.HasField("dim_value") for d in dims), (name, v.name)
    onnx.checker.check_model(model, full_check=True)
    return model


def ort_session(model):
    so = ort.SessionOptions()
    # Reference outputs are computed op by op, without ORT graph fusions.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), so, providers=["CPUExecutionProvider"]
    )


def vi(name, shape):
    """Value info; shape None = to be filled in by shape inference (outputs)."""
    return helper.make_tensor_value_info(
        name, TensorProto.FLOAT, None if shape is None else list(shape)
    )


def init(name, arr):
    arr = np.asarray(arr)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return numpy_helper.from_array(arr, name)


def he(rng, shape, fan_in):
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)


def small_bias(rng, n):
    return rng.normal(0.0, 0.1, size=(n,)).astype(np.float32)


def model_io(model):
    def dims(v):
        return [d.dim_value for d in v.type.tensor_type.shape.dim]

    ins = [(v.name, dims(v)) for v in model.graph.input]
    outs = [(v.name, dims(v)) for v in model.graph.output]
    return ins, outs


# --------------------------------------------------------------------------
# numpy conv / BN training code for the digits CNN
# --------------------------------------------------------------------------


def im2col(x, k, stride, pad, dil=1):
    """x: (N,C,H,W); pad = (top, left, bottom, right). Returns (N,C,k,k,Ho,Wo)."""
    n, c, h, w = x.shape
    t, l, b, r = pad
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    ho = (h + t + b - dil * (k - 1) - 1) // stride + 1
    wo = (w + l + r - dil * (k - 1) - 1) // stride + 1
    cols = np.empty((n, c, k, k, ho, wo), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[
                :,
                :,
                i * dil : i * dil + stride * (ho - 1) + 1 : stride,
                j * dil : j * dil + stride * (wo - 1) + 1 : stride,
            ]
    return cols, xp.shape


def conv_fwd(x, w, b, stride=1, pad=(1, 1, 1, 1), groups=1):
    n, c, h, wd = x.shape
    m, cg, k, _ = w.shape
    g = groups
    cols, xp_shape = im2col(x, k, stride, pad)
    ho, wo = cols.shape[-2:]
    cols_r = cols.reshape(n, g, cg * k * k, ho * wo)
    w_r = w.reshape(g, m // g, cg * k * k)
    out = np.matmul(w_r[None], cols_r).reshape(n, m, ho, wo)
    if b is not None:
        out = out + b[None, :, None, None]
    cache = (x.shape, w, cols_r, xp_shape, stride, pad, groups, k, ho, wo)
    return out, cache


def conv_bwd(dout, cache):
    x_shape, w, cols_r, xp_shape, stride, pad, g, k, ho, wo = cache
    n, c, h, wd = x_shape
    m, cg = w.shape[:2]
    dr = dout.reshape(n, g, m // g, ho * wo)
    dw = np.matmul(dr, cols_r.transpose(0, 1, 3, 2)).sum(0).reshape(w.shape)
    db = dout.sum(axis=(0, 2, 3))
    w_r = w.reshape(g, m // g, cg * k * k)
    dcols = np.matmul(w_r.transpose(0, 2, 1)[None], dr).reshape(n, c, k, k, ho, wo)
    dxp = np.zeros(xp_shape, dtype=dout.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i : i + stride * (ho - 1) + 1 : stride,
                j : j + stride * (wo - 1) + 1 : stride] += dcols[:, :, i, j]
    t, l = pad[0], pad[1]
    return dxp[:, :, t : t + h, l : l + wd], dw, db


BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch convention: running = (1-m)*running + m*batch


class DigitsCNN:
    def __init__(self, rng, c1=8, c2=16):
        self.c1, self.c2 = c1, c2
        p = {}
        p["w1"] = rng.normal(0, np.sqrt(2 / 9), (c1, 1, 3, 3))  # no bias: BN follows
        p["gamma"] = np.ones(c1)
        p["beta"] = np.zeros(c1)
        p["w2"] = rng.normal(0, np.sqrt(2 / (9 * c1)), (c2, c1, 3, 3))
        p["b2"] = np.zeros(c2)
        p["w3"] = rng.normal(0, np.sqrt(2 / 9), (c2, 1, 3, 3))
        p["b3"] = np.zeros(c2)
        p["w4"] = rng.normal(0, np.sqrt(1 / c2), (10, c2))  # Gemm weight, transB=1
        p["b4"] = np.zeros(10)
        self.p = p
        self.run_mean = np.zeros(c1)
        self.run_var = np.ones(c1)

    def n_params(self):
        return int(sum(v.size for v in self.p.values())) + 2 * self.c1

    def forward(self, x, train):
        p = self.p
        c = {}
        z1, c["c1"] = conv_fwd(x, p["w1"], None, 1, (1, 1, 1, 1))
        if train:
            mu = z1.mean(axis=(0, 2, 3))
            var = z1.var(axis=(0, 2, 3))
            cnt = z1.shape[0] * z1.shape[2] * z1.shape[3]
            self.run_mean = (1 - BN_MOMENTUM) * self.run_mean + BN_MOMENTUM * mu
            self.run_var = (1 - BN_MOMENTUM) * self.run_var + BN_MOMENTUM * var * cnt / (cnt - 1)
        else:
            mu, var = self.run_mean, self.run_var
        inv = 1.0 / np.sqrt(var + BN_EPS)
        xhat = (z1 - mu[None, :, None, None]) * inv[None, :, None, None]
        bn = p["gamma"][None, :, None, None] * xhat + p["beta"][None, :, None, None]
        c["bn"] = (xhat, inv)
        a1 = np.maximum(bn, 0)
        c["a1"] = a1
        z2, c["c2"] = conv_fwd(a1, p["w2"], p["b2"], 2, (1, 1, 1, 1))
        a2 = np.maximum(z2, 0)
        c["z2"] = z2
        z3, c["c3"] = conv_fwd(a2, p["w3"], p["b3"], 1, (1, 1, 1, 1), groups=self.c2)
        a3 = np.clip(z3, 0, 6)
        c["z3"] = z3
        gap = a3.mean(axis=(2, 3))
        c["gap"] = gap
        c["a3shape"] = a3.shape
        logits = gap @ p["w4"].T + p["b4"]
        return logits, c

    def backward(self, dlogits, c):
        p = self.p
        g = {}
        g["w4"] = dlogits.T @ c["gap"]
        g["b4"] = dlogits.sum(0)
        dgap = dlogits @ p["w4"]
        n, ch, h, w = c["a3shape"]
        da3 = np.broadcast_to(dgap[:, :, None, None] / (h * w), c["a3shape"])
        dz3 = da3 * ((c["z3"] > 0) & (c["z3"] < 6))
        da2, g["w3"], g["b3"] = conv_bwd(dz3, c["c3"])
        dz2 = da2 * (c["z2"] > 0)
        da1, g["w2"], g["b2"] = conv_bwd(dz2, c["c2"])
        dbn = da1 * (c["a1"] > 0)
        xhat, inv = c["bn"]
        g["gamma"] = (dbn * xhat).sum(axis=(0, 2, 3))
        g["beta"] = dbn.sum(axis=(0, 2, 3))
        dxhat = dbn * p["gamma"][None, :, None, None]
        m = dbn.shape[0] * dbn.shape[2] * dbn.shape[3]
        dz1 = (inv[None, :, None, None] / m) * (
            m * dxhat
            - dxhat.sum(axis=(0, 2, 3))[None, :, None, None]
            - xhat * (dxhat * xhat).sum(axis=(0, 2, 3))[None, :, None, None]
        )
        _, g["w1"], _ = conv_bwd(dz1, c["c1"])
        return g


def softmax_xent(logits, y):
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    pr = e / e.sum(1, keepdims=True)
    loss = -np.log(pr[np.arange(len(y)), y] + 1e-12).mean()
    d = pr.copy()
    d[np.arange(len(y)), y] -= 1
    return loss, d / len(y)


def train_digits(x_tr, y_tr, x_te, y_te, c1, c2, epochs=120, seed=0, lr0=3e-3):
    rng = np.random.default_rng(seed)
    net = DigitsCNN(rng, c1, c2)
    adam_m = {k: np.zeros_like(v) for k, v in net.p.items()}
    adam_v = {k: np.zeros_like(v) for k, v in net.p.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    bs = 32
    step = 0
    n = len(x_tr)
    for ep in range(epochs):
        lr = lr0 * 0.5 * (1 + np.cos(np.pi * ep / epochs))  # cosine decay
        perm = rng.permutation(n)
        tot = 0.0
        for s in range(0, n, bs):
            idx = perm[s : s + bs]
            if len(idx) < 2:
                continue
            logits, cache = net.forward(x_tr[idx], train=True)
            loss, d = softmax_xent(logits, y_tr[idx])
            tot += loss * len(idx)
            grads = net.backward(d, cache)
            step += 1
            for k in net.p:
                gk = grads[k]
                if k.startswith("w"):
                    gk = gk + 1e-4 * net.p[k]  # small L2
                adam_m[k] = b1 * adam_m[k] + (1 - b1) * gk
                adam_v[k] = b2 * adam_v[k] + (1 - b2) * gk * gk
                mh = adam_m[k] / (1 - b1**step)
                vh = adam_v[k] / (1 - b2**step)
                net.p[k] -= lr * mh / (np.sqrt(vh) + eps)
        if ep % 20 == 0 or ep == epochs - 1:
            acc = (net.forward(x_te, train=False)[0].argmax(1) == y_te).mean()
            print(f"  epoch {ep:3d} loss {tot / n:.4f} test acc (numpy) {acc:.4f}")
    return net


def digits_onnx(net):
    p = {k: v.astype(np.float32) for k, v in net.p.items()}
    c1, c2 = net.c1, net.c2
    inits = [
        init("conv1.weight", p["w1"]),
        init("bn1.scale", p["gamma"]),
        init("bn1.bias", p["beta"]),
        init("bn1.mean", net.run_mean.astype(np.float32)),
        init("bn1.var", net.run_var.astype(np.float32)),
        init("conv2.weight", p["w2"]),
        init("conv2.bias", p["b2"]),
        init("dwconv.weight", p["w3"]),
        init("dwconv.bias", p["b3"]),
        init("clip.min", np.array(0.0, np.float32)),
        init("clip.max", np.array(6.0, np.float32)),
        init("fc.weight", p["w4"]),
        init("fc.bias", p["b4"]),
    ]
    N = helper.make_node
    nodes = [
        N("Conv", ["image", "conv1.weight"], ["conv1"], name="conv1",
          kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        N("BatchNormalization", ["conv1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"],
          ["bn1"], name="bn1", epsilon=BN_EPS, momentum=1 - BN_MOMENTUM),
        N("Relu", ["bn1"], ["relu1"], name="relu1"),
        N("Conv", ["relu1", "conv2.weight", "conv2.bias"], ["conv2"], name="conv2",
          kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        N("Relu", ["conv2"], ["relu2"], name="relu2"),
        N("Conv", ["relu2", "dwconv.weight", "dwconv.bias"], ["dwconv"], name="dwconv",
          kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=c2),
        N("Clip", ["dwconv", "clip.min", "clip.max"], ["clip"], name="relu6"),
        N("GlobalAveragePool", ["clip"], ["gap"], name="gap"),
        N("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        N("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    return make_model(
        "digits_cnn", nodes, [vi("image", [1, 1, 8, 8])], [vi("logits", [1, 10])], inits,
        doc="Digits CNN trained on sklearn load_digits (x/16), see models/README.md",
    )


def make_digits():
    os.makedirs(DIGITS_DIR, exist_ok=True)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float64)[:, None, :, :]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    c1, c2 = 8, 16
    print(f"training digits CNN c1={c1} c2={c2} on {len(x_tr)} images")
    net = train_digits(x_tr, y_tr, x_te, y_te, c1, c2)
    model = digits_onnx(net)
    onnx.save(model, os.path.join(DIGITS_DIR, "digits_cnn.onnx"))

    test_x = x_te.astype(np.float32)
    test_y = y_te.astype(np.int64)
    calib_x = x_tr[:200].astype(np.float32)
    np.save(os.path.join(DIGITS_DIR, "test_x.npy"), test_x)
    np.save(os.path.join(DIGITS_DIR, "test_y.npy"), test_y)
    np.save(os.path.join(DIGITS_DIR, "calib_x.npy"), calib_x)

    sess = ort_session(model)
    logits = np.concatenate(
        [sess.run(["logits"], {"image": test_x[i : i + 1]})[0] for i in range(len(test_x))]
    ).astype(np.float32)
    np.savez(os.path.join(DIGITS_DIR, "reference.npz"), logits=logits)
    acc = float((logits.argmax(1) == test_y).mean())
    np_logits = net.forward(x_te, train=False)[0]
    max_diff = float(np.abs(np_logits - logits).max())
    print(f"digits: ORT float test accuracy {acc:.4f} on N={len(test_y)}; "
          f"max |numpy-ORT| logit diff {max_diff:.2e}")
    assert acc >= 0.95, acc
    assert max_diff < 1e-3, max_diff
    return {
        "acc": acc,
        "n_test": len(test_y),
        "n_params": net.n_params(),
        "channels": (c1, c2),
        "bn_mean": net.run_mean,
        "bn_var": net.run_var,
        "model": model,
    }


# --------------------------------------------------------------------------
# MobileNet-style depthwise-separable CNN on digits upscaled to 16x16
# --------------------------------------------------------------------------

DS_DIR = os.path.join(HERE, "ds_cnn")
# (depthwise stride, pointwise output channels) of each block after the stem.
DS_STEM = 8
DS_BLOCKS = ((2, 16), (1, 32), (2, 32), (1, 64))
# L1 penalty on the BN scales (network slimming, Liu et al. 2017): it drives some channels'
# scales to near zero, so the next layers see nearly constant channels and their folded weights
# span a wide range of magnitudes, as in trained MobileNets.
DS_GAMMA_L1 = 1e-3


def bn_fwd(z, gamma, beta, state, train):
    """BatchNormalization over (N, H, W); state = [running mean, running var]."""
    if train:
        mu, var = z.mean(axis=(0, 2, 3)), z.var(axis=(0, 2, 3))
        cnt = z.shape[0] * z.shape[2] * z.shape[3]
        state[0] = (1 - BN_MOMENTUM) * state[0] + BN_MOMENTUM * mu
        state[1] = (1 - BN_MOMENTUM) * state[1] + BN_MOMENTUM * var * cnt / (cnt - 1)
    else:
        mu, var = state
    inv = 1.0 / np.sqrt(var + BN_EPS)
    xhat = (z - mu[None, :, None, None]) * inv[None, :, None, None]
    return gamma[None, :, None, None] * xhat + beta[None, :, None, None], (xhat, inv)


def bn_bwd(dout, gamma, cache):
    xhat, inv = cache
    dgamma = (dout * xhat).sum(axis=(0, 2, 3))
    dbeta = dout.sum(axis=(0, 2, 3))
    dxhat = dout * gamma[None, :, None, None]
    m = dout.shape[0] * dout.shape[2] * dout.shape[3]
    dz = (inv[None, :, None, None] / m) * (
        m * dxhat
        - dxhat.sum(axis=(0, 2, 3))[None, :, None, None]
        - xhat * (dxhat * xhat).sum(axis=(0, 2, 3))[None, :, None, None]
    )
    return dz, dgamma, dbeta


class DsCNN:
    """Stem conv 3x3 + BN + ReLU6, then blocks of depthwise 3x3 + BN + ReLU6 -> pointwise
    1x1 + BN + ReLU6, global average pool, Gemm. Convs have no bias (BN follows)."""

    def __init__(self, rng):
        # layers: (name, out channels, in channels per group, kernel, stride, groups)
        layers = [("stem", DS_STEM, 1, 3, 1, 1)]
        c = DS_STEM
        for i, (stride, out) in enumerate(DS_BLOCKS):
            layers.append((f"dw{i + 1}", c, 1, 3, stride, c))
            layers.append((f"pw{i + 1}", out, c, 1, 1, 1))
            c = out
        self.layers = layers
        self.p, self.bn = {}, {}
        for name, out, cin, k, _, _ in layers:
            self.p[name + ".w"] = rng.normal(0, np.sqrt(2 / (cin * k * k)), (out, cin, k, k))
            self.p[name + ".gamma"] = np.ones(out)
            self.p[name + ".beta"] = np.zeros(out)
            self.bn[name] = [np.zeros(out), np.ones(out)]
        self.p["fc.w"] = rng.normal(0, np.sqrt(1 / c), (10, c))
        self.p["fc.b"] = np.zeros(10)

    def n_params(self):
        return int(sum(v.size for v in self.p.values())) + sum(2 * s[0].size for s in self.bn.values())

    def forward(self, x, train):
        caches = []
        a = x
        for name, _, _, k, stride, groups in self.layers:
            pad = (k // 2,) * 4
            z, cc = conv_fwd(a, self.p[name + ".w"], None, stride, pad, groups)
            y, cb = bn_fwd(z, self.p[name + ".gamma"], self.p[name + ".beta"], self.bn[name], train)
            caches.append((cc, cb, y))
            a = np.clip(y, 0, 6)
        gap = a.mean(axis=(2, 3))
        logits = gap @ self.p["fc.w"].T + self.p["fc.b"]
        return logits, (caches, gap, a.shape)

    def backward(self, dlogits, cache):
        caches, gap, shape = cache
        g = {"fc.w": dlogits.T @ gap, "fc.b": dlogits.sum(0)}
        dgap = dlogits @ self.p["fc.w"]
        da = np.broadcast_to(dgap[:, :, None, None] / (shape[2] * shape[3]), shape)
        for (name, *_), (cc, cb, y) in zip(reversed(self.layers), reversed(caches)):
            dy = da * ((y > 0) & (y < 6))
            dz, g[name + ".gamma"], g[name + ".beta"] = bn_bwd(dy, self.p[name + ".gamma"], cb)
            da, g[name + ".w"], _ = conv_bwd(dz, cc)
        return g


def train_ds(x_tr, y_tr, x_te, y_te, epochs=40, seed=0, lr0=3e-3):
    rng = np.random.default_rng(seed)
    net = DsCNN(rng)
    adam_m = {k: np.zeros_like(v) for k, v in net.p.items()}
    adam_v = {k: np.zeros_like(v) for k, v in net.p.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    bs, step, n = 32, 0, len(x_tr)
    for ep in range(epochs):
        lr = lr0 * 0.5 * (1 + np.cos(np.pi * ep / epochs))
        perm = rng.permutation(n)
        tot = 0.0
        for s in range(0, n, bs):
            idx = perm[s : s + bs]
            if len(idx) < 2:
                continue
            logits, cache = net.forward(x_tr[idx], train=True)
            loss, d = softmax_xent(logits, y_tr[idx])
            tot += loss * len(idx)
            grads = net.backward(d, cache)
            step += 1
            for k in net.p:
                gk = grads[k]
                if k.endswith(".w"):
                    gk = gk + 1e-4 * net.p[k]
                if k.endswith(".gamma"):
                    gk = gk + DS_GAMMA_L1 * np.sign(net.p[k])  # network slimming
                adam_m[k] = b1 * adam_m[k] + (1 - b1) * gk
                adam_v[k] = b2 * adam_v[k] + (1 - b2) * gk * gk
                mh = adam_m[k] / (1 - b1**step)
                vh = adam_v[k] / (1 - b2**step)
                net.p[k] -= lr * mh / (np.sqrt(vh) + eps)
        if ep % 10 == 0 or ep == epochs - 1:
            acc = (net.forward(x_te, train=False)[0].argmax(1) == y_te).mean()
            print(f"  epoch {ep:3d} loss {tot / n:.4f} test acc (numpy) {acc:.4f}")
    return net


def ds_onnx(net):
    f32 = lambda a: np.asarray(a, np.float32)
    inits, nodes = [init("relu6.min", f32(0.0)), init("relu6.max", f32(6.0))], []
    x = "image"
    for name, _, _, k, stride, groups in net.layers:
        inits += [init(name + ".weight", f32(net.p[name + ".w"])),
                  init(name + ".bn.scale", f32(net.p[name + ".gamma"])),
                  init(name + ".bn.bias", f32(net.p[name + ".beta"])),
                  init(name + ".bn.mean", f32(net.bn[name][0])),
                  init(name + ".bn.var", f32(net.bn[name][1]))]
        nodes += [
            N("Conv", [x, name + ".weight"], [name], name=name, kernel_shape=[k, k],
              pads=[k // 2] * 4, strides=[stride, stride], group=groups),
            N("BatchNormalization", [name] + [f"{name}.bn.{p}" for p in ("scale", "bias", "mean", "var")],
              [name + ".bn"], name=name + ".bn", epsilon=BN_EPS, momentum=1 - BN_MOMENTUM),
            N("Clip", [name + ".bn", "relu6.min", "relu6.max"], [name + ".relu6"], name=name + ".relu6"),
        ]
        x = name + ".relu6"
    inits += [init("fc.weight", f32(net.p["fc.w"])), init("fc.bias", f32(net.p["fc.b"]))]
    nodes += [
        N("GlobalAveragePool", [x], ["gap"], name="gap"),
        N("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        N("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    return make_model(
        "ds_cnn", nodes, [vi("image", [1, 1, 16, 16])], [vi("logits", [1, 10])], inits,
        doc="MobileNet-style depthwise-separable CNN on sklearn digits upscaled to 16x16, "
            "see models/README.md",
    )


def make_ds_cnn():
    os.makedirs(DS_DIR, exist_ok=True)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float64)[:, None, :, :]
    y = d.target.astype(np.int64)
    # The digits CNN's split, each 8x8 image upscaled to 16x16 by repeating every pixel 2x2, so
    # the test set is digits/test_x.npy upscaled and needs no file of its own.
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    x_tr, x_te = (np.kron(a, np.ones((2, 2))) for a in (x_tr, x_te))
    print(f"training depthwise-separable CNN on {len(x_tr)} images (16x16)")
    net = train_ds(x_tr, y_tr, x_te, y_te)
    model = ds_onnx(net)
    onnx.save(model, os.path.join(DS_DIR, "ds_cnn.onnx"))
    test_x, test_y = x_te.astype(np.float32), y_te.astype(np.int64)
    np.save(os.path.join(DS_DIR, "calib_x.npy"), x_tr[:200].astype(np.float32))
    sess = ort_session(model)
    logits = np.concatenate(
        [sess.run(["logits"], {"image": test_x[i : i + 1]})[0] for i in range(len(test_x))]
    ).astype(np.float32)
    acc = float((logits.argmax(1) == test_y).mean())
    max_diff = float(np.abs(net.forward(x_te, train=False)[0] - logits).max())
    print(f"ds_cnn: ORT float test accuracy {acc:.4f} on N={len(test_y)}; "
          f"max |numpy-ORT| logit diff {max_diff:.2e}")
    assert acc >= 0.9, acc
    assert max_diff < 1e-3, max_diff
    # Range of every folded conv's output channels: largest / smallest channel magnitude.
    spread = {}
    for name, *_ in net.layers:
        w = net.p[name + ".w"] * (net.p[name + ".gamma"] / np.sqrt(net.bn[name][1] + BN_EPS))[:, None, None, None]
        r = np.abs(w).reshape(len(w), -1).max(1)
        spread[name] = float(r.max() / r.min())
    print("  folded weight range spread (max/min channel):", {k: round(v, 1) for k, v in spread.items()})
    return {"acc": acc, "n_test": len(test_y), "n_params": net.n_params(), "spread": spread,
            "layers": net.layers, "model": model}


# --------------------------------------------------------------------------
# op-coverage models
# --------------------------------------------------------------------------

OPS = {}  # name -> builder(rng) -> (model, input_shape, input_std, description)


def op(fn):
    OPS[fn.__name__[len("op_"):]] = fn
    return fn


N = helper.make_node


def conv_node(name, x, w, b, out, **attrs):
    ins = [x, w] + ([b] if b else [])
    return N("Conv", ins, [out], name=name, **attrs)


def single_conv_model(name, rng, in_shape, out_ch, k, doc, group=1, with_bias=True, **attrs):
    cin = in_shape[1]
    w = he(rng, (out_ch, cin // group, k, k), cin // group * k * k)
    inits = [init("w", w)]
    if with_bias:
        inits.append(init("b", small_bias(rng, out_ch)))
    node = conv_node("conv", "x", "w", "b" if with_bias else None, "y",
                     kernel_shape=[k, k], group=group, **attrs)
    return make_model(name, [node], [vi("x", in_shape)], [vi("y", None)], inits, doc=doc)


@op
def op_conv_basic(rng):
    s = [1, 3, 10, 12]
    doc = "Conv 3->8, 3x3, pads 1, stride 1, bias"
    return single_conv_model("conv_basic", rng, s, 8, 3, doc, pads=[1, 1, 1, 1]), s, 1.0, doc


@op
def op_conv_stride2_dilation(rng):
    s = [1, 4, 15, 13]
    doc = "Conv 4->8, 3x3, stride 2, dilation 2, asymmetric pads [t=1,l=2,b=2,r=1], bias"
    m = single_conv_model("conv_stride2_dilation", rng, s, 8, 3, doc,
                          strides=[2, 2], dilations=[2, 2], pads=[1, 2, 2, 1])
    return m, s, 1.0, doc


@op
def op_conv_same_upper(rng):
    s = [1, 4, 11, 14]
    doc = ("Conv 4->6, 5x5, stride 2, auto_pad SAME_UPPER (effective pads "
           "t=2,b=2 / l=1,r=2), bias")
    m = single_conv_model("conv_same_upper", rng, s, 6, 5, doc,
                          strides=[2, 2], auto_pad="SAME_UPPER")
    return m, s, 1.0, doc


@op
def op_conv_1x1(rng):
    s = [1, 16, 8, 8]
    doc = "Conv 16->8, 1x1 (pointwise), no pads, bias"
    return single_conv_model("conv_1x1", rng, s, 8, 1, doc), s, 1.0, doc


@op
def op_depthwise(rng):
    s = [1, 8, 10, 10]
    doc = "Depthwise Conv, group=8, 8->8, 3x3, pads 1, bias"
    return single_conv_model("depthwise", rng, s, 8, 3, doc, group=8, pads=[1, 1, 1, 1]), s, 1.0, doc


@op
def op_depthwise_multiplier(rng):
    s = [1, 6, 9, 9]
    doc = "Depthwise Conv with channel multiplier 2: group=6, 6->12, 3x3, pads 1, bias"
    m = single_conv_model("depthwise_multiplier", rng, s, 12, 3, doc, group=6, pads=[1, 1, 1, 1])
    return m, s, 1.0, doc


@op
def op_gemm(rng):
    s = [1, 4, 6, 6]
    doc = "Flatten(axis=1) -> Gemm(transB=1, bias) 144->10"
    inits = [init("w", he(rng, (10, 144), 144)), init("b", small_bias(rng, 10))]
    nodes = [
        N("Flatten", ["x"], ["flat"], name="flatten", axis=1),
        N("Gemm", ["flat", "w", "b"], ["y"], name="gemm", transB=1),
    ]
    return make_model("gemm", nodes, [vi("x", s)], [vi("y", None)], inits, doc=doc), s, 1.0, doc


@op
def op_matmul(rng):
    s = [1, 32]
    doc = "MatMul with constant weight [32,16] on a 2-D input, then Add bias [16]"
    inits = [init("w", he(rng, (32, 16), 32)), init("b", small_bias(rng, 16))]
    nodes = [
        N("MatMul", ["x", "w"], ["mm"], name="matmul"),
        N("Add", ["mm", "b"], ["y"], name="add_bias"),
    ]
    return make_model("matmul", nodes, [vi("x", s)], [vi("y", None)], inits, doc=doc), s, 1.0, doc


def binary_broadcast_model(name, opname, rng, const):
    s = [1, 8, 8, 8]
    doc = (f"{opname}(x, c[1,8,1,1]) then {opname}(that, Relu(x)): per-channel constant "
           f"broadcast and a tensor-tensor op on two graph branches")
    inits = [init("c", const)]
    nodes = [
        N(opname, ["x", "c"], ["xc"], name=f"{opname.lower()}_const"),
        N("Relu", ["x"], ["r"], name="relu"),
        N(opname, ["xc", "r"], ["y"], name=f"{opname.lower()}_branches"),
    ]
    return make_model(name, nodes, [vi("x", s)], [vi("y", None)], inits, doc=doc), s, 1.0, doc


@op
def op_add_broadcast(rng):
    return binary_broadcast_model("add_broadcast", "Add", rng,
                                  rng.normal(0, 0.5, (1, 8, 1, 1)).astype(np.float32))


@op
def op_mul_broadcast(rng):
    return binary_broadcast_model("mul_broadcast", "Mul", rng,
                                  rng.uniform(0.25, 2.0, (1, 8, 1, 1)).astype(np.float32)
                                  * rng.choice([-1.0, 1.0], (1, 8, 1, 1)).astype(np.float32))


def unary_model(name, opname, std, opset=13, inits=(), extra_inputs=(), doc=None, **attrs):
    s = [1, 8, 8, 8]
    doc = doc or f"single {opname} node on a [1,8,8,8] input"
    nodes = [N(opname, ["x", *extra_inputs], ["y"], name=name, **attrs)]
    m = make_model(name, nodes, [vi("x", s)], [vi("y", None)], list(inits), opset=opset, doc=doc)
    return m, s, std, doc


@op
def op_relu(rng):
    return unary_model("relu", "Relu", 1.0)


@op
def op_clip_relu6(rng):
    inits = [init("min", np.array(0.0, np.float32)), init("max", np.array(6.0, np.float32))]
    return unary_model("clip_relu6", "Clip", 4.0, inits=inits, extra_inputs=("min", "max"),
                       doc="Clip(min=0, max=6) (ReLU6), min/max as scalar initializers "
                           "(opset 13); input std 4 so both bounds are hit")


@op
def op_leaky_relu(rng):
    return unary_model("leaky_relu", "LeakyRelu", 1.0, alpha=0.1,
                       doc="LeakyRelu alpha=0.1")


@op
def op_hard_swish(rng):
    return unary_model("hard_swish", "HardSwish", 3.0, opset=14,
                       doc="HardSwish (opset 14: the op does not exist in 13); input std 3")


@op
def op_hard_sigmoid(rng):
    return unary_model("hard_sigmoid", "HardSigmoid", 3.0, alpha=1.0 / 6.0, beta=0.5,
                       doc="HardSigmoid alpha=1/6 beta=0.5 (MobileNetV3 form); input std 3")


@op
def op_sigmoid(rng):
    return unary_model("sigmoid", "Sigmoid", 2.0, doc="Sigmoid; input std 2")


@op
def op_tanh(rng):
    return unary_model("tanh", "Tanh", 2.0, doc="Tanh; input std 2")


@op
def op_maxpool(rng):
    s = [1, 8, 11, 11]
    doc = "MaxPool 3x3, stride 2, pads 1"
    nodes = [N("MaxPool", ["x"], ["y"], name="maxpool", kernel_shape=[3, 3],
               strides=[2, 2], pads=[1, 1, 1, 1])]
    return make_model("maxpool", nodes, [vi("x", s)], [vi("y", None)], [], doc=doc), s, 1.0, doc


@op
def op_avgpool(rng):
    s = [1, 8, 11, 11]
    doc = "AveragePool 3x3, stride 2, pads 1, count_include_pad=0"
    nodes = [N("AveragePool", ["x"], ["y"], name="avgpool", kernel_shape=[3, 3],
               strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)]
    return make_model("avgpool", nodes, [vi("x", s)], [vi("y", None)], [], doc=doc), s, 1.0, doc


@op
def op_global_avgpool(rng):
    s = [1, 16, 7, 7]
    doc = "GlobalAveragePool on [1,16,7,7]"
    nodes = [N("GlobalAveragePool", ["x"], ["y"], name="gap")]
    return make_model("global_avgpool", nodes, [vi("x", s)], [vi("y", None)], [], doc=doc), s, 1.0, doc


@op
def op_reduce_mean_spatial(rng):
    s = [1, 16, 6, 9]
    doc = "ReduceMean axes=[2,3] keepdims=1 (axes as attribute, opset 13)"
    nodes = [N("ReduceMean", ["x"], ["y"], name="reduce_mean", axes=[2, 3], keepdims=1)]
    return make_model("reduce_mean_spatial", nodes, [vi("x", s)], [vi("y", None)], [],
                      doc=doc), s, 1.0, doc


@op
def op_reshape_flatten(rng):
    s = [1, 4, 8, 8]
    doc = ("Conv 4->8 3x3 pads 1 -> Reshape [1,8,-1] -> Unsqueeze axes=[1] -> "
           "Squeeze axes=[1] -> Flatten axis=1 -> Gemm(transB=1) 512->10")
    inits = [
        init("conv.w", he(rng, (8, 4, 3, 3), 36)),
        init("conv.b", small_bias(rng, 8)),
        init("shape", np.array([1, 8, -1], np.int64)),
        init("axes", np.array([1], np.int64)),
        init("fc.w", he(rng, (10, 512), 512)),
        init("fc.b", small_bias(rng, 10)),
    ]
    nodes = [
        conv_node("conv", "x", "conv.w", "conv.b", "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        N("Reshape", ["c", "shape"], ["r"], name="reshape"),        # [1,8,64]
        N("Unsqueeze", ["r", "axes"], ["u"], name="unsqueeze"),     # [1,1,8,64]
        N("Squeeze", ["u", "axes"], ["sq"], name="squeeze"),        # [1,8,64]
        N("Flatten", ["sq"], ["f"], name="flatten", axis=1),        # [1,512]
        N("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1),
    ]
    return make_model("reshape_flatten", nodes, [vi("x", s)], [vi("y", None)], inits,
                      doc=doc), s, 1.0, doc


@op
def op_concat(rng):
    s = [1, 4, 8, 8]
    doc = ("two branches concatenated on channels: Relu(Conv 4->6 3x3 pads 1) and "
           "Conv 4->4 1x1; Concat axis=1 -> [1,10,8,8]")
    inits = [
        init("a.w", he(rng, (6, 4, 3, 3), 36)), init("a.b", small_bias(rng, 6)),
        init("b.w", he(rng, (4, 4, 1, 1), 4)), init("b.b", small_bias(rng, 4)),
    ]
    nodes = [
        conv_node("conv_a", "x", "a.w", "a.b", "ca", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        N("Relu", ["ca"], ["ra"], name="relu_a"),
        conv_node("conv_b", "x", "b.w", "b.b", "cb", kernel_shape=[1, 1]),
        N("Concat", ["ra", "cb"], ["y"], name="concat", axis=1),
    ]
    return make_model("concat", nodes, [vi("x", s)], [vi("y", None)], inits, doc=doc), s, 1.0, doc


@op
def op_pad(rng):
    s = [1, 4, 7, 9]
    doc = ("Pad mode=constant value 0, pads [0,0,1,2, 0,0,2,1] (H: 1 before/2 after, "
           "W: 2 before/1 after) -> [1,4,10,12], then Conv 4->8 3x3 no pads -> [1,8,8,10]")
    inits = [
        init("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)),
        init("value", np.array(0.0, np.float32)),
        init("w", he(rng, (8, 4, 3, 3), 36)), init("b", small_bias(rng, 8)),
    ]
    nodes = [
        N("Pad", ["x", "pads", "value"], ["p"], name="pad", mode="constant"),
        conv_node("conv", "p", "w", "b", "y", kernel_shape=[3, 3]),
    ]
    return make_model("pad", nodes, [vi("x", s)], [vi("y", None)], inits, doc=doc), s, 1.0, doc


@op
def op_transpose(rng):
    s = [1, 8, 5, 6]
    doc = ("Transpose perm=[0,2,3,1] (NCHW->NHWC) -> MatMul with constant [8,12] over the "
           "last axis -> [1,5,6,12]")
    inits = [init("w", he(rng, (8, 12), 8))]
    nodes = [
        N("Transpose", ["x"], ["t"], name="to_nhwc", perm=[0, 2, 3, 1]),
        N("MatMul", ["t", "w"], ["y"], name="matmul"),
    ]
    return make_model("transpose", nodes, [vi("x", s)], [vi("y", None)], inits, doc=doc), s, 1.0, doc


@op
def op_softmax(rng):
    s = [1, 32]
    doc = "Gemm(transB=1, bias) 32->10 -> Softmax axis=-1"
    inits = [init("w", he(rng, (10, 32), 32)), init("b", small_bias(rng, 10))]
    nodes = [
        N("Gemm", ["x", "w", "b"], ["g"], name="gemm", transB=1),
        N("Softmax", ["g"], ["y"], name="softmax", axis=-1),
    ]
    return make_model("softmax", nodes, [vi("x", s)], [vi("y", None)], inits, doc=doc), s, 1.0, doc


@op
def op_batchnorm(rng):
    s = [1, 4, 8, 8]
    doc = ("Conv 4->8 3x3 pads 1 (bias) -> BatchNormalization (non-trivial scale/bias/"
           "mean/var, eps 1e-3) -> Relu")
    inits = [
        init("w", he(rng, (8, 4, 3, 3), 36)), init("b", small_bias(rng, 8)),
        init("bn.scale", rng.uniform(0.5, 1.5, 8)),
        init("bn.bias", rng.normal(0, 0.2, 8)),
        init("bn.mean", rng.normal(0, 0.3, 8)),
        init("bn.var", rng.uniform(0.5, 2.5, 8)),
    ]
    nodes = [
        conv_node("conv", "x", "w", "b", "c", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        N("BatchNormalization", ["c", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["bn"],
          name="bn", epsilon=1e-3),
        N("Relu", ["bn"], ["y"], name="relu"),
    ]
    return make_model("batchnorm", nodes, [vi("x", s)], [vi("y", None)], inits, doc=doc), s, 1.0, doc


def make_unsupported():
    rng = np.random.default_rng(zlib.crc32(b"unsupported"))
    s = [1, 8]
    doc = "Sin -> Einsum('ij,jk->ik') with a constant [8,4]: two ops Ember does not support"
    inits = [init("w", he(rng, (8, 4), 8))]
    nodes = [
        N("Sin", ["x"], ["s"], name="sin"),
        N("Einsum", ["s", "w"], ["y"], name="einsum", equation="ij,jk->ik"),
    ]
    m = make_model("unsupported", nodes, [vi("x", s)], [vi("y", None)], inits, doc=doc)
    sess = ort_session(m)
    x = rng.normal(size=s).astype(np.float32)
    ref = np.sin(x) @ numpy_helper.to_array(m.graph.initializer[0])
    assert np.allclose(sess.run(None, {"x": x})[0], ref, atol=1e-5)
    onnx.save(m, os.path.join(OPS_DIR, "unsupported.onnx"))
    return m, doc


def make_ops():
    os.makedirs(OPS_DIR, exist_ok=True)
    info = []
    for name, builder in OPS.items():
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        model, shape, std, doc = builder(rng)
        sess = ort_session(model)
        in_name = sess.get_inputs()[0].name
        data = {}
        for i in range(N_SAMPLES):
            x = (rng.normal(0.0, 1.0, size=shape) * std).astype(np.float32)
            out = sess.run(None, {in_name: x})
            assert len(out) == 1
            data[f"input_{i}"] = x
            data[f"output_{i}"] = out[0].astype(np.float32)
            assert np.all(np.isfinite(out[0]))
        onnx.save(model, os.path.join(OPS_DIR, f"{name}.onnx"))
        np.savez(os.path.join(OPS_DIR, f"{name}.npz"), **data)
        ins, outs = model_io(model)
        opset = model.opset_import[0].version
        print(f"  ops/{name}: {ins} -> {outs} opset {opset}")
        info.append((name, ins, outs, std, opset, doc))
    m, doc = make_unsupported()
    ins, outs = model_io(m)
    info.append(("unsupported", ins, outs, None, 13, doc))
    return info


# --------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------


def versions():
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "scikit-learn": sklearn.__version__,
    }


def fmt_io(lst):
    return ", ".join(f"`{n}` {d}" for n, d in lst)


def write_readme(dig, ds, ops_info):
    v = versions()
    vs = ", ".join(f"{k} {val}" for k, val in v.items())
    dm_in, dm_out = model_io(dig["model"])
    L = []
    L.append("# Ember test models and data\n")
    L.append("Everything in this folder except `mlperf-tiny/` is generated by "
             "[`make_models.py`](make_models.py). CI does **not** run the script; the "
             "generated files are committed. Do not edit them by hand: change the script, "
             "re-run it and commit the outputs.\n")
    L.append("```sh\npython3 -m pip install onnx==%s onnxruntime==%s numpy==%s scikit-learn==%s\n"
             "python3 models/make_models.py\n```\n"
             % (v["onnx"], v["onnxruntime"], v["numpy"], v["scikit-learn"]))
    L.append(f"Last generated with: {vs}.\n")
    L.append("All models: ONNX IR version %d, default-domain opset 13 (except "
             "`ops/hard_swish.onnx`, opset 14, because HardSwish first appears there), "
             "float32, static shapes, batch 1, NCHW for 4-D tensors. Each model was checked "
             "with `onnx.checker.check_model(full_check=True)` and run with onnxruntime "
             "(CPU provider, graph optimizations disabled, one thread). Intermediate shapes "
             "are stored in `graph.value_info` (ONNX shape inference).\n" % IR_VERSION)
    L.append("`.npy`/`.npz` files are written with `numpy.save`/`numpy.savez` "
             "(npz = uncompressed zip of `.npy` members, little-endian).\n")

    L.append("## digits/\n")
    c1, c2 = dig["channels"]
    L.append(f"A small CNN trained on scikit-learn's bundled `load_digits()` data "
             f"(1797 8x8 grey images of handwritten digits, values 0..16; no download).\n")
    L.append(f"* Split: `train_test_split(test_size=0.25, random_state=0, stratify=y)` "
             f"-> 1347 train / {dig['n_test']} test images. Input scaled to [0,1] as x/16.")
    L.append(f"* **Float test accuracy (onnxruntime): {dig['acc'] * 100:.2f}% "
             f"({round(dig['acc'] * dig['n_test'])}/{dig['n_test']})**.")
    L.append(f"* Inputs: {fmt_io(dm_in)}; outputs: {fmt_io(dm_out)} (raw logits, no softmax).")
    L.append(f"* Architecture ({dig['n_params']} parameters incl. BN running stats): "
             f"Conv(1->{c1}, 3x3, pads 1, no bias) -> BatchNormalization (eps 1e-5, "
             f"trained running statistics) -> Relu -> Conv({c1}->{c2}, 3x3, stride 2, pads 1) "
             f"-> Relu -> depthwise Conv(group={c2}, 3x3, pads 1) -> Clip(0, 6) -> "
             f"GlobalAveragePool -> Flatten -> Gemm({c2}->10, transB=1).")
    L.append(f"* BN running mean: {np.array2string(dig['bn_mean'], precision=3)}; "
             f"running var: {np.array2string(dig['bn_var'], precision=3)} "
             f"(the conv1 output is not normalised, so BN folding is really exercised).")
    L.append("* Training: plain numpy (im2col forward/backward), float64, Adam lr 3e-3 with "
             "cosine decay, batch 32, 120 epochs, no augmentation, "
             "L2 1e-4 on weights, BN momentum 0.1, seed 0.\n")
    L.append("| file | content |\n| --- | --- |")
    L.append("| `digits/digits_cnn.onnx` | the model |")
    L.append(f"| `digits/test_x.npy` | float32 ({dig['n_test']}, 1, 8, 8), test images /16 |")
    L.append(f"| `digits/test_y.npy` | int64 ({dig['n_test']},), test labels 0..9 |")
    L.append("| `digits/calib_x.npy` | float32 (200, 1, 8, 8), the first 200 training images "
             "(in split order), for quantization calibration |")
    L.append(f"| `digits/reference.npz` | key `logits`: float32 ({dig['n_test']}, 10), "
             f"onnxruntime output for every test image, in test_x order |\n")

    L.append("## ds_cnn/\n")
    layers = ds["layers"]
    blocks = ", ".join(f"dw 3x3 stride {layers[i][4]} -> pw {layers[i][1]}->{layers[i + 1][1]}"
                       for i in range(1, len(layers), 2))
    L.append("A MobileNet-style depthwise-separable CNN, trained like the digits CNN on the same "
             "split, every 8x8 image upscaled to 16x16 by repeating each pixel 2x2 (`np.kron`).\n")
    L.append(f"* **Float test accuracy (onnxruntime): {ds['acc'] * 100:.2f}% "
             f"({round(ds['acc'] * ds['n_test'])}/{ds['n_test']})** on `digits/test_x.npy` "
             f"upscaled (labels `digits/test_y.npy`).")
    L.append("* Inputs: `image` [1, 1, 16, 16]; outputs: `logits` [1, 10] (raw logits).")
    L.append(f"* Architecture ({ds['n_params']} parameters incl. BN running stats): stem "
             f"Conv(1->{DS_STEM}, 3x3, pads 1, no bias) -> BatchNormalization -> Clip(0, 6), then "
             f"{len(DS_BLOCKS)} blocks ({blocks}), each conv without bias followed by "
             "BatchNormalization (eps 1e-5) and Clip(0, 6) (ReLU6), then GlobalAveragePool -> "
             "Flatten -> Gemm(64->10, transB=1). The BN nodes are kept for the quantizer to fold.")
    spread = ", ".join(f"{k} {v:.1f}" for k, v in ds["spread"].items())
    L.append(f"* Training: as the digits CNN (Adam lr 3e-3, cosine decay, batch 32, L2 1e-4 on "
             f"conv weights, seed 0), 40 epochs, plus an L1 penalty {DS_GAMMA_L1:g} on the BN "
             f"scales (network slimming), which drives some channels' scales towards zero, so "
             f"after folding the channels' weight ranges differ widely, as in trained MobileNets "
             f"(largest / smallest channel magnitude per folded conv: {spread}): what makes "
             f"per-tensor weight scales lose precision and cross-layer equalization help.\n")
    L.append("| file | content |\n| --- | --- |")
    L.append("| `ds_cnn/ds_cnn.onnx` | the model |")
    L.append("| `ds_cnn/calib_x.npy` | float32 (200, 1, 16, 16), `digits/calib_x.npy` upscaled, "
             "for quantization calibration |\n")

    L.append("## ops/\n")
    L.append("One small model per operator pattern, random weights (He-normal init, "
             "biases N(0, 0.1), seeded from crc32 of the model name). Every model has "
             "exactly one input and one output; second operands are initializers or come "
             "from another branch of the graph. Each `ops/<name>.onnx` has an "
             "`ops/<name>.npz` with keys `input_0`..`input_7` (8 seeded float32 inputs, "
             "N(0, std^2) with the std given below) and `output_0`..`output_7` (onnxruntime "
             "outputs, float32).\n")
    L.append("| model | input | output | input std | opset | graph |\n"
             "| --- | --- | --- | --- | --- | --- |")
    for name, ins, outs, std, opset, doc in ops_info:
        stds = "-" if std is None else f"{std:g}"
        L.append(f"| `{name}` | {fmt_io(ins)} | {fmt_io(outs)} | {stds} | {opset} | {doc} |")
    L.append("")
    L.append("`ops/unsupported.onnx` has no `.npz`: it is for error-reporting tests (the "
             "quantizer/runtime should name both `Sin` and `Einsum`). onnxruntime runs it.\n")

    L.append("## Licence\n")
    L.append("The digits data (`digits/*.npy`, and the trained weights and reference "
             "outputs derived from it) come from scikit-learn's bundled copy of the UCI "
             "\"Optical Recognition of Handwritten Digits\" test set, distributed with "
             "scikit-learn under the BSD-3-Clause licence (the upstream UCI page, E. Alpaydin and "
             "C. Kaynak, 1998, lists the original data set under CC BY 4.0, which asks for "
             "attribution; this paragraph is that attribution). The script and the random-weight "
             "models are part of Ember (Apache-2.0, see the workspace `Cargo.toml`).\n")
    L.append("`mlperf-tiny/` is maintained separately and not produced by this script.\n")
    with open(os.path.join(HERE, "README.md"), "w") as f:
        f.write("\n".join(L))


def main():
    print("versions:", versions())
    np.set_printoptions(suppress=True)
    dig = make_digits()
    ds = make_ds_cnn()
    print("op models:")
    ops_info = make_ops()
    write_readme(dig, ds, ops_info)
    total = 0
    for root, _, files in os.walk(HERE):
        if "mlperf-tiny" in root:
            continue
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"models/ (excluding mlperf-tiny) total {total / 1024:.1f} KiB")


if __name__ == "__main__":
    sys.exit(main())
