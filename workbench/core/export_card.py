"""The package's README.md, written as a model card from the same facts as deploy.json."""

from __future__ import annotations

import json


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _how(how) -> str:
    if isinstance(how, dict):
        return ", ".join(f"{k} {v}" for k, v in how.items())
    return str(how or "")


def _metric_value(m: dict) -> str:
    if m.get("unit") == "fraction":
        return f"{100 * float(m['value']):.2f} %"
    return f"{_fmt(m['value'])} {m.get('unit', '')}".strip()


def _shape(shape) -> str:
    return " x ".join(str(d) for d in shape)


def render_readme(deploy: dict, files: dict[str, dict]) -> str:
    """Markdown model card: use, inputs/outputs, preprocessing, labels, metrics, latency, recipe, limits, files."""
    name = deploy["name"]
    lines = [f"# {name}", ""]
    if deploy.get("description"):
        lines += [deploy["description"], ""]
    lines += [f"Deployment package written by Model Workbench {deploy['tools'].get('workbench', '')} on "
              f"{deploy['created']}. Everything here is also in `deploy.json`, and the key facts are in each ONNX "
              "file's `metadata_props`.", ""]

    lines += ["## Intended use", "", deploy.get("intended_use") or
              "Classification of inputs prepared exactly as described under Preprocessing. Not evaluated for any "
              "other use.", ""]

    lines += ["## How to run", "", "```", "python -m venv .venv && . .venv/bin/activate",
              "pip install -r requirements.txt",
              "python infer.py              # classify the bundled sample (sample.npz)",
              "python infer.py x.npy        # an array already preprocessed (N x input shape, or one sample)"]
    if deploy["preprocessing"].get("mean") is not None:
        lines.append("python infer.py image.png    # an image file (needs Pillow: pip install pillow)")
    lines += ["python infer.py --fp32       # use model.onnx even when model.int8.onnx is present", "```", "",
              f"`infer.py` uses `{deploy['default_model']}` unless told `--fp32`, needs only numpy and ONNX Runtime, "
              "and checks the model's sha256 against deploy.json before loading it.", ""]

    lines += ["## Models", "", "| file | precision | notes |", "| --- | --- | --- |"]
    for m in deploy["models"]:
        notes = f"opset {m['opset']}" if m.get("opset") else ""
        q = m.get("quantization") or {}
        if q.get("method"):
            notes = (f"{q['method']}, {q.get('integer_ops', '?')} integer ops, {q.get('float_compute_ops', '?')} "
                     f"float compute ops, calibrated on {q.get('calibration_samples_used', '?')} samples of "
                     f"{q.get('calibration_data', '?')}")
        elif q.get("how"):
            notes = q["how"]
        lines.append(f"| `{m['file']}` | {m['precision']} | {notes}{' (default)' if m.get('default') else ''} |")
    lines.append("")

    lines += ["## Inputs and outputs", "", "| | name | shape | dtype |", "| --- | --- | --- | --- |"]
    lines += [f"| input | `{s['name']}` | {_shape(s['shape'])} | {s['dtype']} |" for s in deploy["inputs"]]
    lines += [f"| output | `{s['name']}` | {_shape(s['shape'])} | {s['dtype']} |" for s in deploy["outputs"]]
    post = deploy["postprocessing"]
    lines += ["", f"The first output holds {deploy['outputs'][0].get('meaning', 'scores')}; the predicted class is "
              f"its argmax{' (softmax gives probabilities)' if post.get('softmax') else ''}.", ""]

    pre = deploy["preprocessing"]
    lines += ["## Preprocessing", "", f"- {pre['formula']}"]
    if pre.get("color"):
        lines.append(f"- color: {pre['color']}" + (f", resized to {pre['size'][0]} x {pre['size'][1]} (height x "
                                                   "width)" if pre.get("size") else ""))
    if pre.get("notes"):
        lines.append(f"- {pre['notes']}")
    lines.append("")

    labels = deploy.get("labels") or []
    lines += ["## Labels", "", "Class index: label. " + (", ".join(f"{i}: {label}" for i, label in enumerate(labels))
                                                       or "none")]
    if not deploy.get("labels_given"):
        lines.append("No labels were given: classes are named by their index.")
    lines.append("")

    lines += ["## Metrics", ""]
    if deploy["metrics"]:
        lines += ["| metric | model | value | measured or estimated | how |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {m['name']} | {m.get('model') or ''} | {_metric_value(m)} | {m['provenance']} | "
                  f"{_how(m.get('how'))} |" for m in deploy["metrics"]]
    else:
        lines.append("No metrics were recorded for this package.")
    if not any("accuracy" in m["name"] for m in deploy["metrics"]):
        lines += ["", "Accuracy was not measured: no labelled data was given. Measure it on your data before "
                      "relying on this model."]
    lines.append("")

    lines += ["## Latency", ""] + _latency_lines(deploy.get("latency")) + [""]

    lines += ["## Validation before writing", ""]
    val = deploy["validation"]
    lines.append(f"- ONNX checker (full check, onnx {val['onnx_checker']['onnx']}) passed for "
                 f"{', '.join(val['onnx_checker']['passed'])}.")
    lines += [f"- {describe_check(c, quote='`')}." for c in val["checks"]]
    lines.append("")

    lines += ["## Recipe", ""]
    if deploy.get("recipe"):
        lines += ["```json", json.dumps(deploy["recipe"], indent=2, default=str), "```"]
    else:
        lines.append("No recipe recorded: the model was packaged as given.")
    lines += ["", f"Source: `{deploy['source']['file']}` ({deploy['source']['format']}, sha256 "
              f"`{deploy['source']['sha256'][:16]}…`).", ""]

    lines += ["## Limitations", ""]
    limits = list(deploy.get("limitations") or [])
    limits.append("Accuracy and latency were measured on the data and machine named above; check them on yours.")
    if len(deploy["models"]) > 1:
        limits.append("The int8 model's outputs differ slightly from fp32 (see Validation); its speed depends on "
                      "the CPU's integer instructions (VNNI on x86, dot-product on ARM).")
    lines += [f"- {item}" for item in limits] + [""]

    lines += ["## Tools", "", ", ".join(f"{k} {v}" for k, v in deploy["tools"].items()), ""]

    lines += ["## Files", "", "| file | bytes | sha256 |", "| --- | --- | --- |"]
    lines += [f"| `{n}` | {f['bytes']} | `{f['sha256']}` |" for n, f in files.items()]
    lines += ["", "`README.md` and `deploy.json` are hashed in `deploy.json` and `SHA256SUMS` "
              "(check with `sha256sum -c SHA256SUMS`).", ""]
    return "\n".join(lines)


def describe_check(c: dict, quote: str = "") -> str:
    """One validation check of a package as a sentence: the model against its reference, on how many inputs, and
    the measured difference against its bound (the model card and the export dialog both say it so)."""
    head = f"{quote}{c['model']}{quote} vs {c['reference']} on {c['inputs']} inputs"
    if "atol" in c:
        return (f"{head}: max abs diff {c['max_abs_diff']:.3g} within atol {c['atol']:g} + rtol {c['rtol']:g} "
                "x |reference|")
    return (f"{head}: top-1 agreement {100 * c['top1_agreement']:.1f} % (at least "
            f"{100 * c['min_top1_agreement']:.0f} % required), max abs diff {c['max_abs_diff']:.3g} (reported)")


def _latency_lines(latency: dict | None) -> list[str]:
    if not latency:
        return ["No latency report was made at export; latency figures under Metrics, if any, come from the "
                "project's measurements."]
    models = latency.get("models")
    if not isinstance(models, dict):
        return ["```json", json.dumps(latency, indent=2, default=str), "```"]
    device = latency.get("device") or {}
    where = device.get("cpu") or device.get("name") or "unknown device"
    lines = [f"{latency.get('provenance', 'measured').capitalize()} on {where} with {latency.get('runtime', '?')}, "
             f"{latency.get('threads', '?')} thread(s), batch {latency.get('batch', '?')}, {latency.get('runs', '?')} "
             f"runs after {latency.get('warmup', '?')} warm-up runs.", "",
             "| model | p50 ms | p90 ms | p99 ms |", "| --- | --- | --- | --- |"]
    for name, s in models.items():
        lines.append(f"| `{name}` | {_fmt(s.get('p50'))} | {_fmt(s.get('p90'))} | {_fmt(s.get('p99'))} |")
    lines += ["", f"Full report: `{latency.get('file', 'latency.json')}`."]
    return lines
