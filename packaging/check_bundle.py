"""Prove the desktop bundle starts: run its program from outside the checkout, with no Python environment, on the
demo (inspect, the method registry, a local benchmark through the agent child, int8 quantization, an export
package, and a GUI screenshot that needs the model-reader child); the screenshot must differ from the empty window's.

    python packaging/check_bundle.py dist/ModelWorkbench [--screenshot FILE.png]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUILT_INS = {"quantize.int8_static", "quantize.int8_dynamic", "prune.channels", "prune.magnitude", "finetune",
             "distill.kd", "quantize.bits", "analysis.sensitivity"}


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def run(program: Path, args: list[str], cwd: Path, env: dict, timeout: float = 300) -> str:
    start = time.monotonic()
    proc = subprocess.run([str(program), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"FAILED: {program.name} {' '.join(args)} exited {proc.returncode}\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    print(f"ok   {program.name} {' '.join(args)}  ({took:.1f} s)")
    return proc.stdout


def differing_fraction(a: Path, b: Path) -> float:
    """Share of sampled pixels that differ between two same-sized screenshots."""
    from PySide6.QtGui import QImage

    first, second = QImage(str(a)), QImage(str(b))
    if first.isNull() or second.isNull() or first.size() != second.size():
        raise SystemExit(f"FAILED: {a} and {b} are not two screenshots of one size")
    step = 4
    points = [(x, y) for y in range(0, first.height(), step) for x in range(0, first.width(), step)]
    return sum(first.pixel(x, y) != second.pixel(x, y) for x, y in points) / len(points)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="the one-folder bundle, e.g. dist/ModelWorkbench")
    parser.add_argument("--screenshot", type=Path, help="where to keep the screenshot (default: a temporary file)")
    args = parser.parse_args(argv)
    bundle = args.bundle.resolve()
    program = bundle / "ModelWorkbench"
    if not program.is_file():
        raise SystemExit(f"FAILED: no program at {program}; build it with `make package`")
    # Nothing from a Python environment or this checkout may help the bundle.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(QT_QPA_PLATFORM="offscreen", PATH="/usr/bin:/bin")
    with tempfile.TemporaryDirectory(prefix="wb-bundle-check-") as tmp:
        cwd = Path(tmp)
        env["HOME"] = tmp  # fresh settings, as on a first start
        report = json.loads(run(program, ["inspect", "--demo", "--json"], cwd, env))
        if not (report["params"] > 100_000 and report["macs"] > 0):
            raise SystemExit(f"FAILED: implausible demo totals {report['params']} params, {report['macs']} MACs")
        if not Path(report["source"]).resolve().is_relative_to(bundle):
            raise SystemExit(f"FAILED: the demo came from {report['source']}, not from the bundle")
        listed = json.loads(run(program, ["methods", "--json"], cwd, env))
        ids = {m["id"] for m in listed["methods"]}
        if ids != BUILT_INS or listed["failed"]:
            raise SystemExit(f"FAILED: methods {sorted(ids)}, failed {listed['failed']}")
        bench = json.loads(run(program, ["bench", "--demo", "--runs", "20", "--warmup", "2", "--json"], cwd, env))
        if not bench["p50_ms"] > 0:
            raise SystemExit(f"FAILED: local benchmark gave {bench}")
        # Static int8 quantization (onnxruntime.quantization, calibrated on the bundled data) and a deployment
        # package (the infer.py template is a data file of the bundle).
        run(program, ["apply", "--demo", "--method", "quantize.int8_static", "--data", "demo",
                      "--out", str(cwd / "int8.onnx")], cwd, env)
        run(program, ["export", "--demo", "--out", str(cwd / "package")], cwd, env)
        if not (cwd / "package" / "infer.py").is_file():
            raise SystemExit("FAILED: the exported package has no infer.py")
        shot = (args.screenshot or cwd / "screenshot.png").resolve()
        empty = cwd / "empty.png"
        run(program, ["gui", "--screenshot", str(empty)], cwd, env)  # the window with no model
        run(program, ["gui", "--demo", "--screenshot", str(shot)], cwd, env)  # needs the model-reader child
        changed = differing_fraction(empty, shot)
        if changed < 0.05:
            raise SystemExit(f"FAILED: the demo screenshot {shot} hardly differs from the empty window "
                             f"({changed:.1%} of pixels)")
        print(f"ok   screenshot {shot}: {changed:.0%} of the window changed once the demo graph was drawn")
    print(f"bundle {bundle}: {folder_size(bundle) / 2**20:.0f} MiB, "
          f"{sum(1 for f in bundle.rglob('*') if f.is_file())} files; demo {report['params']:,} params, "
          f"{report['macs']:,} MACs; local p50 {bench['p50_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
