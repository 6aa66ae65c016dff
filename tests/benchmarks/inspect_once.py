"""Open one model in a fresh process and print timing and memory as JSON (used by run_all.py).

Peak memory is read from /proc (VmHWM) after resetting it once the libraries are imported, so the figure is what
opening the model costs on top of the interpreter and its libraries.
"""

import json
import sys
import time
from pathlib import Path


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    path, shapes = sys.argv[1], sys.argv[2:]
    t0 = time.perf_counter()
    if not path.endswith(".onnx"):
        import torch  # noqa: F401 - the torch readers need it; its import is reported separately
    import onnx  # noqa: F401

    from workbench.core.readers import OpenRequest, open_model
    from workbench.core.shapes import ShapeRequest

    import_s = time.perf_counter() - t0
    baseline = _status("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    t1 = time.perf_counter()
    graph = open_model(OpenRequest(Path(path), shapes=ShapeRequest.parse(shapes)))
    open_s = time.perf_counter() - t1
    print(json.dumps({"import_s": import_s, "open_s": open_s, "baseline_rss": baseline,
                      "peak_rss": _status("VmHWM"), "params": graph.params, "macs": graph.macs}))


if __name__ == "__main__":
    main()
