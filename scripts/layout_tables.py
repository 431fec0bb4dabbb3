#!/usr/bin/env python3
"""The tables of docs/BENCHMARKS.md "Weight layouts on the Cortex-M4": the emulated Cortex-M4's
instructions per inference and flash for the imported MLPerf Tiny `.tflite` models in the three
weight layouts against TFLite Micro + CMSIS-NN (issue 4's figures), and where the instructions
go with `dsp-pairs-wide`, per layer kind, with the MACs per instruction of each depthwise layer.

It reads the files the three `bench-device` runs write (standard library only):
    cargo xtask bench-device --tflite
    cargo xtask bench-device --tflite --weight-layout dsp-pairs --board qemu-m4
    cargo xtask bench-device --tflite --weight-layout dsp-pairs-wide --board qemu-m4
    python3 scripts/layout_tables.py
"""
import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "benches" / "results"
# TFLite Micro + CMSIS-NN on mps2-an386 (issue 4): instructions per inference, code + model bytes.
TFLM = {"kws": (7_697_880, 142_884), "vww": (24_101_920, 422_236), "ic": (29_861_680, 182_304), "ad": (582_960, 313_204)}
LAYOUTS = [("standard", "device-tflite.json"), ("dsp-pairs", "device-tflite-dsp-pairs.json"),
           ("dsp-pairs-wide", "device-tflite-dsp-pairs-wide.json")]


def m4_runs(file):
    runs = {r["model"]: r for r in json.loads((RESULTS / file).read_text()) if r["board"] == "qemu-m4"}
    for name, r in runs.items():
        if not (r["output_matches_host"] and r["output_matches_reference"] is not False):
            raise SystemExit(f"{file}: {name}'s outputs differ from the host's or TFLite's")
    return runs


def layer_kind(layer):
    if layer["kind"] == "conv2d":
        window = layer["shape"].split("/")[0]
        cin = re.search(r" (\d+)\u2192", layer["shape"])
        first = cin and int(cin.group(1)) <= 3
        return f"first conv2d ({layer['shape']})" if first else f"conv2d {window}"
    if layer["kind"] == "depthwise_conv2d":
        return "depthwise " + layer["shape"].split("/")[0]
    return layer["kind"]


def main():
    runs = {layout: m4_runs(file) for layout, file in LAYOUTS}
    print("| model | TFLM + CMSIS-NN | 0.5× target | " + " | ".join(l for l, _ in LAYOUTS) + " |")
    print("|---|--:|--:|" + "--:|" * len(LAYOUTS))
    for model, (tflm, _) in TFLM.items():
        cells = []
        for layout, _ in LAYOUTS:
            n = runs[layout][model]["instructions"]
            cells.append(f"{n:,} ({100 * n / tflm:.1f} %) {'✓' if 2 * n <= tflm else '✗'}")
        print(f"| {model.upper()} | {tflm:,} | {tflm // 2:,} | " + " | ".join(cells) + " |")
    print()
    print("| model | TFLM code + model | " + " | ".join(l for l, _ in LAYOUTS) + " |")
    print("|---|--:|" + "--:|" * len(LAYOUTS))
    for model, (_, flash) in TFLM.items():
        cells = []
        for layout, _ in LAYOUTS:
            r = runs[layout][model]
            cells.append(f"{r['firmware_bytes']:,} ({100 * r['firmware_bytes'] / flash:.0f} %), code {r['code_bytes']:,}")
        print(f"| {model.upper()} | {flash:,} | " + " | ".join(cells) + " |")
    print()
    print("| model | layers | MACs | instructions | share | MACs / instruction |")
    print("|---|---|--:|--:|--:|--:|")
    depthwise = []
    for model in TFLM:
        layers = runs["dsp-pairs-wide"][model]["layers"]
        total = sum(l["ticks"] for l in layers)
        kinds = {}
        for l in layers:
            k = kinds.setdefault(layer_kind(l), [0, 0, 0])
            k[0] += 1
            k[1] += l["macs"]
            k[2] += l["ticks"]
        for kind, (n, macs, ticks) in sorted(kinds.items(), key=lambda kv: -kv[1][2]):
            if ticks >= total / 100:
                rate = f"{macs / ticks:.2f}" if macs else "–"
                print(f"| {model.upper()} | {kind} ×{n} | {macs:,} | {ticks:,} | {100 * ticks / total:.1f} % | {rate} |")
        depthwise += [f"{model.upper()} {l['shape']} {l['macs'] / l['ticks']:.2f}" for l in layers
                      if l["kind"] == "depthwise_conv2d"]
    print()
    print("Depthwise layers, MACs per instruction (dsp-pairs-wide): " + "; ".join(depthwise))


if __name__ == "__main__":
    main()
