"""The ``workbench`` command: the desktop app (default), ``inspect`` and ``archs``."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

EXIT_USER_ERROR = 2
EXIT_INTERNAL = 1


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="model file: .onnx, TorchScript .pt, .pt2, state_dict .pt with "
                                            "--arch, pickled module or model.py:build with --trust-code")
    p.add_argument("--demo", action="store_true", help="use the bundled demo model (digits classifier)")
    p.add_argument("--input-shape", action="append", metavar="[NAME:]1x3x224x224",
                   help="input shape (repeat for several inputs); binds dynamic axes")
    p.add_argument("--trust-code", action="store_true",
                   help="allow formats that run code when loaded (pickled modules, Python factories)")
    p.add_argument("--arch", metavar="NAME[:k=v,...]",
                   help="built-in architecture for a state_dict (see `workbench archs`)")
    p.add_argument("--weights", metavar="FILE", help="state_dict to load into the model built by model.py:build")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Model Workbench: inspect, compress and measure neural networks.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--demo", action="store_true", help="open the app on the bundled demo model")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("inspect", help="print a model's layers with parameters and MACs")
    _model_args(p)
    p.add_argument("--top", type=int, metavar="N", help="show only the N layers with the most MACs")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    gp = sub.add_parser("gui", help="open the desktop app (the default command)")
    _model_args(gp)
    gp.add_argument("--screenshot", metavar="FILE.png",
                    help="open the model, save a PNG of the window once the graph is drawn, and exit")
    gp.add_argument("--theme", choices=["system", "light", "dark"], help="theme for this run")
    gp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    a = sub.add_parser("archs", help="list the built-in architectures")
    a.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parser


def open_from_args(args) -> "LayerGraph":  # noqa: F821 - imported lazily
    """Open the model the arguments name and return its LayerGraph (raises WorkbenchError)."""
    from workbench.core.errors import WorkbenchError
    from workbench.core.readers import open_model, split_factory
    from workbench.core.readers.base import OpenRequest
    from workbench.core.shapes import ShapeRequest

    shapes = ShapeRequest.parse(args.input_shape)
    if args.demo:
        from workbench.core.demo import demo_request

        request = demo_request()
        request.shapes = shapes
        return open_model(request)
    if not args.model:
        raise WorkbenchError("no model given", "pass a model file, or --demo for the bundled model")
    path, factory = split_factory(args.model)
    request = OpenRequest(path=path, shapes=shapes, trust_code=args.trust_code, architecture=args.arch,
                          factory=factory, weights=Path(args.weights) if args.weights else None)
    return open_model(request)


def cmd_inspect(args) -> int:
    from workbench.core.report import to_json, to_text

    graph = open_from_args(args)
    if args.json:
        json.dump(to_json(graph), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(to_text(graph, top=args.top))
    return 0


def cmd_gui(args) -> int:
    from workbench.gui.app import run

    return run(model=args.model, demo=args.demo, shapes=args.input_shape, trust=args.trust_code, arch=args.arch,
               screenshot=args.screenshot, theme=args.theme)


def cmd_archs(args) -> int:
    from workbench.core import architectures

    for name in architectures.names():
        spec = architectures.ARCHITECTURES[name]
        shape = "x".join(map(str, spec.default_input_shape))
        print(f"{name:<14} {shape:<14} {spec.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from workbench import __version__

        print(f"workbench {__version__}")
        return 0
    debug = bool(getattr(args, "debug", False))
    if not debug:
        warnings.filterwarnings("ignore")
    if args.command is None:  # `workbench` alone opens the app
        args = parser.parse_args(["gui"] + (["--demo"] if args.demo else []) + (["--debug"] if debug else []))
    handler = {"inspect": cmd_inspect, "archs": cmd_archs, "gui": cmd_gui}[args.command]
    from workbench.core.errors import WorkbenchError

    try:
        return handler(args)
    except WorkbenchError as exc:
        if debug:
            raise
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if debug:
            raise
        where = getattr(args, "model", None) or ("the demo model" if getattr(args, "demo", False) else "")
        print(f"error: {where + ': ' if where else ''}unexpected {type(exc).__name__}: {exc}. "
              "Run again with --debug and report the traceback.", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
