#!/usr/bin/env python3
"""Classify inputs with the model in this package. Needs only numpy and onnxruntime (see requirements.txt).

    python infer.py              classify the bundled sample (sample.npz)
    python infer.py x.npy        an array already preprocessed as deploy.json says (N x input shape, or one sample)
    python infer.py image.png    an image file, preprocessed here (needs Pillow: pip install pillow)
    python infer.py --fp32       use model.onnx even when model.int8.onnx is present

Everything it needs to know (model files, input name, preprocessing, labels) comes from deploy.json beside it.
Written by Model Workbench; this file is the same in every package.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent


def fail(message):
    print("error: " + message, file=sys.stderr)
    sys.exit(2)


def choose_model(deploy, fp32):
    """The int8 model when the package has one (unless --fp32), else the fp32 one."""
    by_precision = {m["precision"]: m["file"] for m in deploy["models"]}
    if not fp32 and "int8" in by_precision:
        return by_precision["int8"], "int8"
    return by_precision["fp32"], "fp32"


def verify(path, deploy):
    """Refuse a model file that is not the one the package was validated with."""
    expected = deploy["files"].get(path.name, {}).get("sha256")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if expected and digest.hexdigest() != expected:
        fail(f"{path.name} does not match its sha256 in deploy.json (damaged or changed); export the package again")


def load_image(path, pre, input_shape):
    """An image file as one model-ready sample, following the package's preprocessing."""
    try:
        from PIL import Image
    except ImportError:
        fail("reading image files needs Pillow (pip install pillow); or pass a preprocessed .npy array")
    if pre.get("mean") is None or pre.get("std") is None or pre.get("scale") is None:
        fail("this package does not say how to preprocess images; pass a preprocessed .npy array")
    gray = pre.get("color") == "grayscale"
    image = Image.open(path).convert("L" if gray else "RGB")
    if pre.get("size"):
        height, width = pre["size"]
        image = image.resize((int(width), int(height)), Image.BILINEAR)
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    x = (x * float(pre["scale"]) - np.asarray(pre["mean"], np.float32)) / np.asarray(pre["std"], np.float32)
    if pre.get("layout", "NCHW") == "NCHW":
        x = x.transpose(2, 0, 1)
    return x[None].astype(np.float32)


def load_inputs(arg, deploy, input_shape):
    """(inputs, true labels or None, name) from the command line argument, or the bundled sample."""
    if arg is None:
        sample = np.load(HERE / deploy["sample"]["file"])
        return sample["x"], (sample["y"] if "y" in sample.files else None), "sample"
    path = Path(arg)
    if not path.is_file():
        fail(f"{arg}: no such file")
    if path.suffix.lower() == ".npy":
        x = np.load(path, allow_pickle=False).astype(np.float32)
        if x.ndim == len(input_shape) - 1:
            x = x[None]
        want = input_shape[1:]
        if x.ndim != len(input_shape) or any(isinstance(w, int) and w != g for w, g in zip(want, x.shape[1:])):
            fail(f"{arg}: shape {x.shape} does not fit the model input {input_shape}")
        return x, None, path.name
    return load_image(path, deploy["preprocessing"], input_shape), None, path.name


def run(session, x):
    """The first output for every input, batching as the model allows."""
    spec = session.get_inputs()[0]
    fixed = spec.shape[0] if spec.shape and isinstance(spec.shape[0], int) else None
    step = fixed or 64
    outs = []
    for i in range(0, len(x), step):
        chunk = x[i:i + step]
        n = len(chunk)
        if fixed and n < fixed:  # a model with a fixed batch: fill the last one up, keep only the real rows
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
        outs.append(session.run(None, {spec.name: chunk})[0][:n])
    return np.concatenate(outs)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", nargs="?", help=".npy array (preprocessed) or an image file; default: sample.npz")
    parser.add_argument("--fp32", action="store_true", help="use the fp32 model even when an int8 one is present")
    parser.add_argument("--top", type=int, default=1, metavar="K", help="also list the K most likely classes")
    args = parser.parse_args(argv)

    deploy = json.loads((HERE / "deploy.json").read_text())
    file, precision = choose_model(deploy, args.fp32)
    path = HERE / file
    verify(path, deploy)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_shape = deploy["inputs"][0]["shape"]
    x, truth, name = load_inputs(args.input, deploy, input_shape)
    scores = run(session, x.astype(np.float32)).reshape(len(x), -1)
    probs = softmax(scores) if deploy["postprocessing"].get("softmax") else scores
    labels = deploy.get("labels") or [str(i) for i in range(scores.shape[1])]
    print(f"{deploy['name']}: {file} ({precision}) with onnxruntime {ort.__version__}")
    hits = 0
    for i, p in enumerate(probs):
        k = int(p.argmax())
        line = f"{name} {i}: predicted {labels[k]} (p={p[k]:.2f})"
        if truth is not None and int(truth[i]) >= 0:
            line += f", true {labels[int(truth[i])]}"
            hits += int(truth[i]) == k
        if args.top > 1:
            best = np.argsort(-p)[:args.top]
            line += "  [" + ", ".join(f"{labels[j]} {p[j]:.2f}" for j in best) + "]"
        print(line)
    if truth is not None:
        print(f"{hits}/{len(x)} correct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
