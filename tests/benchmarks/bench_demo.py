"""`workbench demo --headless` as a user runs it (fresh process, full settings): wall time, time per stage, the
variants' figures and the report files. Target on the 2-core machine: under 5 minutes.

``python tests/benchmarks/bench_demo.py --screenshot docs/screenshots/report.png`` also renders the HTML report in
headless Chromium and saves the page as a PNG (the screenshot in the docs comes from here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(screenshot: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="workbench-bench-demo-") as tmp:
        out = Path(tmp) / "demo"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "workbench.cli", "demo", "--headless", "--out", str(out)],
                              capture_output=True, text=True, env=None)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            print(f"workbench demo --headless failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
            return
        print(proc.stdout.rstrip())
        log = json.loads((out / "project" / "demo-run.json").read_text())
        sizes = {name: (out / name).stat().st_size for name in ("report.html", "report.pdf")}
        print(f"wall time of the command (target < 300 s): {wall:.1f} s; pipeline {log['seconds']['total']:.1f} s, "
              f"the rest is start-up and the two reports")
        print("report sizes: " + ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in sizes.items()))
        if screenshot is not None:
            sys.path.insert(0, str(ROOT / "tests"))
            from chromium import render

            result = render(out / "report.html", width=1200)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(result.screenshot)
            print(f"screenshot: {screenshot} (1200x{result.height}); console errors: {result.errors or 'none'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--screenshot", type=Path, help="save the rendered HTML report as a PNG here")
    args = parser.parse_args()
    main(args.screenshot)
