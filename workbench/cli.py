"""The ``workbench`` command: the desktop app (default), ``inspect``, ``methods``, ``apply``, ``run``, ``export``,
``archs``, ``bench``, ``agent``, ``report``, ``demo`` and ``search``."""

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

    m = sub.add_parser("methods", help="list installed compression methods and their parameters")
    m.add_argument("--json", action="store_true", help="print one JSON document")
    m.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    ap = sub.add_parser("apply", help="apply one compression method to a model")
    _model_args(ap)
    ap.add_argument("--method", required=True, metavar="ID", help="method id (see `workbench methods`)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a method parameter")
    ap.add_argument("--data", metavar="demo|FILE.npz", help="calibration / training data")
    ap.add_argument("--out", required=True, metavar="FILE", help="output model (.onnx or .pt2)")
    ap.add_argument("--json", action="store_true", help="print one JSON document with the result")
    ap.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    r = sub.add_parser("run", help="replay a recipe (YAML) and check its goals; exit 3 when a goal is missed")
    r.add_argument("recipe", help="recipe file (see docs/recipes.md)")
    r.add_argument("--out", metavar="DIR", help="project folder to create with every variant (default: temporary)")
    r.add_argument("--json", action="store_true", help="print one JSON document with every variant and the goals")
    r.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    ex = sub.add_parser("export", help="write a deployment package (folder or .zip) that runs with ONNX Runtime")
    _model_args(ex)
    ex.add_argument("--out", required=True, metavar="DIR|FILE.zip", help="package folder, or a .zip file")
    ex.add_argument("--variant", metavar="ID", help="with a project folder as MODEL: the variant to package")
    ex.add_argument("--int8", action="store_true",
                    help="add an int8 model (quantize.int8_static, calibrated on --data)")
    ex.add_argument("--int8-model", metavar="FILE.onnx", help="package this int8 ONNX model instead of quantizing")
    ex.add_argument("--data", metavar="demo|FILE.npz",
                    help="data for the bundled sample, the checks, calibration and accuracy (--demo: demo)")
    ex.add_argument("--name", help="package name (default: the model file's name)")
    ex.add_argument("--labels", metavar="A,B,...|FILE.txt", help="class labels, comma-separated or one a line")
    ex.add_argument("--mean", metavar="M[,M,...]", help="per-channel mean after scaling pixels by 1/255")
    ex.add_argument("--std", metavar="S[,S,...]", help="per-channel std after scaling pixels by 1/255")
    ex.add_argument("--latency", action="store_true", help="measure latency here and include the report")
    ex.add_argument("--atol", type=float, help="fp32 tolerance against the source model (default 1e-4)")
    ex.add_argument("--force", action="store_true", help="replace an existing package at --out")
    ex.add_argument("--json", action="store_true", help="print one JSON document with the result")
    ex.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    a = sub.add_parser("archs", help="list the built-in architectures")
    a.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    b = sub.add_parser("bench", help="measure a model's latency on a device (this machine or a device agent)")
    _model_args(b)
    b.add_argument("--device", default="local", metavar="local|agent://HOST:PORT", help="where to measure")
    b.add_argument("--token", help="the agent's token (or env WORKBENCH_AGENT_TOKEN)")
    b.add_argument("--runs", type=int, default=200, help="timed runs (default 200)")
    b.add_argument("--warmup", type=int, default=20, help="warm-up runs (default 20)")
    b.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    b.add_argument("--provider", help="ONNX Runtime execution provider for --device local")
    b.add_argument("--timeout", type=float, default=600.0, help="seconds the benchmark may take (default 600)")
    b.add_argument("--json", action="store_true", help="print one JSON document")
    b.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    ag = sub.add_parser("agent", help="run the device agent here (what `python server.py` runs on a board)")
    ag.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ag.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    ag.add_argument("--token", help="secret every request must carry (or env WORKBENCH_AGENT_TOKEN)")
    ag.add_argument("--store", help="folder for uploaded models (default ~/.cache/workbench-agent)")
    ag.add_argument("--max-upload-mb", type=float, help="largest model accepted, MiB (default 512)")
    ag.add_argument("--job-timeout", type=float, help="seconds one job may run (default 600)")
    ag.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    rp = sub.add_parser("report", help="write a project's report: one self-contained HTML file, or a PDF")
    rp.add_argument("project", help="project folder (holds project.json)")
    rp.add_argument("--out", required=True, metavar="FILE.html|FILE.pdf", help="the report file")
    rp.add_argument("--device", help="whose latency to show (default: each variant's latest measurement)")
    rp.add_argument("--title", help="report title (default: the project's name)")
    rp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    dm = sub.add_parser("demo", help="open the app on a demo project; --headless runs the demo pipeline and "
                                     "writes its report")
    dm.add_argument("--headless", action="store_true",
                    help="no window: prune + fine-tune, int8, distil the demo model, measure all, write the report")
    dm.add_argument("--out", metavar="DIR", help="folder for the demo project (and, headless, report.html/.pdf); "
                                                 "default: a demo folder in the user's cache")
    dm.add_argument("--quick", action="store_true", help="headless: one epoch per training step and fewer timed "
                                                         "runs (a first look in seconds; lower accuracy)")
    dm.add_argument("--no-tour", action="store_true", help="open the app without the guided tour")
    dm.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    se = sub.add_parser("search", help="search pruning ratio x bit width (or a YAML space) for the smallest variant "
                                       "within --max-drop points of accuracy; exit 3 when none is")
    _model_args(se)
    se.add_argument("--project", required=True, metavar="DIR",
                    help="project folder: opened if it holds one, else created with the model (the same search "
                         "run again resumes there)")
    se.add_argument("--data", metavar="demo|FILE.npz", help="dataset of a new project (--demo: demo)")
    se.add_argument("--space", default="pruning_x_bits", metavar="pruning_x_bits|FILE.yaml",
                    help="search space: a ready one or a YAML file (see docs/search.md)")
    se.add_argument("--strategy", choices=["grid", "optuna"], default="grid", help="every combination, or optuna")
    se.add_argument("--sampler", choices=["tpe", "nsga2"], default="tpe", help="optuna's sampler (default tpe)")
    se.add_argument("--trials", type=int, default=20, help="optuna: trials in all (default 20)")
    se.add_argument("--max-drop", type=float, default=1.0, help="top-1 points a candidate may lose (default 1.0)")
    se.add_argument("--minimise", choices=["size", "macs", "params", "latency"], default="size",
                    help="what to make smallest (default size: bytes of the deployed ONNX file)")
    se.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    se.add_argument("--parent", default="base", metavar="ID", help="variant the candidates start from (default base)")
    se.add_argument("--name", help="search name (default SPACE-STRATEGY); the same name resumes a stopped search")
    se.add_argument("--latency-runs", type=int, default=0,
                    help="measure local latency of every candidate with N timed runs (default: only for "
                         "--minimise latency, 100)")
    se.add_argument("--json", action="store_true", help="print one JSON document instead of lines and a table")
    se.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
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


def cmd_methods(args) -> int:
    from workbench.core import methods as registry

    described = [registry.describe(m) for m in sorted(registry.methods().values(), key=lambda m: m.id)]
    failed = [{"name": r.name, "target": r.target, "error": r.error} for r in registry.failed()]
    if args.json:
        json.dump({"methods": described, "failed": failed}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    for d in described:
        print(f"{d['id']:<22} {d['kind']:<9} {d['label']}" + ("  (needs --data)" if d["needs_data"] else ""))
        for p in d["params"]:
            rng = ", ".join(map(str, p["choices"])) if p["choices"] else (
                f"{p['minimum']} … {p['maximum']}" if p["minimum"] is not None or p["maximum"] is not None else "")
            flag = "  [per layer]" if p["per_layer"] else ""
            print(f"    {p['name']:<20} default {p['default']!s:<10} {rng}{flag}")
    for f in failed:
        print(f"FAILED {f['name']} ({f['target']}): {f['error']}")
    return 0


def _progress_line(p) -> None:
    width = 28
    if p.fraction is None:
        bar = "." * width
        pct = "   "
    else:
        done = int(width * max(0.0, min(1.0, p.fraction)))
        bar, pct = "#" * done + "-" * (width - done), f"{int(100 * p.fraction):>3}"
    sys.stderr.write(f"\r[{bar}] {pct}% {p.message[:60]:<60}")
    sys.stderr.flush()


def cmd_apply(args) -> int:
    from workbench.core.apply import apply, parse_param_values
    from workbench.core.artifact import ModelArtifact
    from workbench.core.methods import get
    from workbench.core.report import human, human_bytes

    graph = open_from_args(args)
    artifact = ModelArtifact.from_graph(graph)
    method = get(args.method)
    values = parse_param_values(method, args.param)
    data = None
    if args.data:
        from workbench.core.data import load_data

        data = load_data(args.data)
    quiet = args.json or not sys.stderr.isatty()
    result = apply(artifact, args.method, values, Path(args.out), data=data, before=graph,
                   on_progress=None if quiet else _progress_line,
                   log=lambda message: print(message, file=sys.stderr))
    if not quiet:
        sys.stderr.write("\n")
    before, after = result.before, result.after
    doc = {"method": args.method, "params": result.params.model_dump(), "out": str(result.artifact.path),
           "format": result.artifact.format, "before": {"params": before.params, "macs": before.macs},
           "after": {"params": after.params, "macs": after.macs}, "size_bytes": result.artifact.size_bytes,
           "counting": "params and MACs counted from shapes", "meta": _jsonable(result.artifact.meta)}
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"{args.method}: wrote {result.artifact.path} ({human_bytes(result.artifact.size_bytes)})")
        print(f"  params {human(before.params)} -> {human(after.params)}, MACs {human(before.macs)} -> "
              f"{human(after.macs)} (counted from shapes)")
    return 0


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        return str(value)


EXIT_GOAL_MISSED = 3


def cmd_run(args) -> int:
    import tempfile

    from workbench.core.methods import run_to_end
    from workbench.core.recipes import load_recipe, run_recipe

    path = Path(args.recipe)
    recipe = load_recipe(path)
    quiet = args.json or not sys.stderr.isatty()
    with tempfile.TemporaryDirectory(prefix="workbench-run-") as tmp:  # the project, unless --out keeps it
        out = Path(args.out) if args.out else Path(tmp) / "project"
        result = run_to_end(run_recipe(recipe, path.parent, out), None if quiet else _progress_line)
    if not quiet:
        sys.stderr.write("\n")
    if args.json:
        json.dump(result.to_json() | {"project": args.out}, sys.stdout)
        sys.stdout.write("\n")
    else:
        for v in result.variants:
            acc = v.accuracy_on()
            lat = v.latency[-1] if v.latency else None
            print(f"{v.id:<6} {v.name:<22} params {v.params.value:>10,}  MACs {v.macs.value:>12,}  "
                  + (f"top-1 {100 * acc.top1:6.2f} %" if acc else "top-1      — (no data)")
                  + (f"  p50 {lat.p50:.3f} ms ({lat.runs} runs)" if lat else ""))
        for d in result.details:
            actual = "not measured" if d["actual"] is None else f"actual {d['actual']}"
            print(f"goal {d['goal']} {d['target']}: {'met' if d['met'] else 'MISSED'} ({actual})")
        if args.out:
            print(f"project: {result.project.folder}")
    return 0 if result.goals_met else EXIT_GOAL_MISSED

def _options_export_request(args, artifact):
    from workbench.core.export import export_request_from_options

    return export_request_from_options(
        artifact, Path(args.out), demo=args.demo, data=args.data or ("demo" if args.demo else None), int8=args.int8,
        int8_model=args.int8_model, name=args.name, labels=args.labels, mean=args.mean, std=args.std,
        latency=args.latency, atol=args.atol, force=args.force, log=lambda message: print(message, file=sys.stderr))


def _project_export_request(args):
    """``workbench export PROJECT --variant ID``: the variant's model, its measured figures and its recipe."""
    from workbench.core.errors import WorkbenchError
    from workbench.core.project import Project
    from workbench.core.project_export import export_request_for_variant

    project = Project.open(Path(args.model))
    if not args.variant:
        done = [v.id for v in project.variants.values() if v.status == "done"]
        raise WorkbenchError("a project holds several variants: say which one with --variant",
                             f"done variants: {', '.join(done) or 'none'}")
    return export_request_for_variant(project, args.variant, Path(args.out), force=args.force,
                                      measure_latency=args.latency,
                                      log=lambda message: print(message, file=sys.stderr))


def _search_project(args):
    """Open the project in --project, or create it there with the model and dataset the arguments name."""
    from workbench.core.datasets import DatasetConfig
    from workbench.core.errors import WorkbenchError
    from workbench.core.modelspec import ModelSpec
    from workbench.core.project import PROJECT_FILE, Project

    folder = Path(args.project)
    spec = None
    if args.demo:
        spec = ModelSpec.demo()
    elif args.model:
        shape = args.input_shape[0].split(":")[-1] if args.input_shape else None
        spec = ModelSpec(path=str(Path(args.model).resolve()), architecture=args.arch, trust_code=args.trust_code,
                         input_shape=[int(d) for d in shape.lower().split("x")] if shape else None)
    if (folder / PROJECT_FILE).is_file():
        project = Project.open(folder)
        if spec is not None and project.base_model is not None and project.base_model.path != spec.path:
            raise WorkbenchError(f"the project's base model is {project.base_model.path}",
                                 "leave out the model to search the project's own, or use another --project", folder)
        return project
    if spec is None:
        raise WorkbenchError("no model given for a new project", "pass a model file or --demo, or an existing "
                             "project folder", folder)
    data = args.data or ("demo" if args.demo else None)
    if data is None:
        raise WorkbenchError("no dataset given for a new project", "pass --data demo or --data FILE.npz")
    dataset = DatasetConfig(kind="demo") if data == "demo" else \
        DatasetConfig(kind="npz", path=str(Path(data).resolve()))
    project = Project.create(folder)
    project.set_base_model(spec)
    project.set_dataset(dataset)
    project.save()
    return project


def cmd_search(args) -> int:
    from pydantic import ValidationError

    from workbench.core.errors import WorkbenchError
    from workbench.core.report import human, human_bytes
    from workbench.core.search import OBJECTIVES, SearchConfig, search
    from workbench.core.search_space import load_space

    space = load_space(args.space)
    try:
        config = SearchConfig(name=args.name or f"{space.name}-{args.strategy}", space=space, parent=args.parent,
                              strategy=args.strategy, sampler=args.sampler, trials=args.trials,
                              minimise=args.minimise, max_drop=args.max_drop, workers=args.workers,
                              latency_runs=args.latency_runs)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise WorkbenchError(f"--{'-'.join(str(p) for p in first['loc']).replace('_', '-')}: {first['msg']}",
                             "see `workbench search --help`") from None
    project = _search_project(args)
    if config.latency_runs and config.workers > 1:
        print("note: latency is measured while other workers run; use --workers 1 for steadier figures",
              file=sys.stderr)
    tty = not args.json and sys.stderr.isatty()
    gen = search(project, config)
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                result = stop.value
                break
            if p.candidate is not None and not args.json:
                if tty:
                    sys.stderr.write("\r" + " " * 100 + "\r")
                print(f"[{p.done}/{p.total}] {p.message}", flush=True)
            elif tty:
                _progress_line(p)
    finally:
        project.autosave()
    if tty:
        sys.stderr.write("\n")
    if args.json:
        json.dump(result.to_json() | {"project": str(project.folder)}, sys.stdout)
        sys.stdout.write("\n")
        return 0 if result.best else EXIT_GOAL_MISSED
    rows = [result.parent] + result.candidates
    timed = any(c.latency_p50 is not None for c in rows)
    print(f"\n{'candidate':<28} {'size':>10} {'MACs':>9} " + (f"{'p50 ms':>8} " if timed else "") +
          f"{'top-1 %':>8} {'drop pt':>8} {'feasible':>8} {'pareto':>6}  variant")
    for c in rows:
        label = "parent" if c is result.parent else c.label
        if c.status != "done":
            print(f"{label:<28} failed: {c.error}")
            continue
        top1 = f"{100 * c.top1:.2f}" if c.top1 is not None else "–"
        drop = f"{c.drop:+.2f}" if c.drop is not None else "–"
        p50 = (f"{c.latency_p50:>8.3f} " if c.latency_p50 is not None else f"{'–':>8} ") if timed else ""
        print(f"{label:<28} {human_bytes(c.size_bytes) if c.size_bytes else '–':>10} {human(c.macs):>9} {p50}"
              f"{top1:>8} {drop:>8} {'yes' if c.feasible else 'no':>8} {'*' if c.pareto else '':>6}  {c.variant_id}")
    print(f"minimised: {OBJECTIVES[config.minimise]}; accuracy: top-1 on the project's validation data (measured); "
          f"{result.steps_run} step(s) run now, the rest reused")
    if result.best is None:
        print(f"no candidate within {config.max_drop} points of the parent's accuracy")
        return EXIT_GOAL_MISSED
    b = result.best
    cost = b.cost(config.minimise)
    cost_text = {"size": lambda v: human_bytes(int(v)), "latency": lambda v: f"{v:.3f} ms"}.get(config.minimise, human)
    print(f"winner: {b.label} -> variant {b.variant_id} ({config.minimise} {cost_text(cost)}, top-1 "
          f"{100 * b.top1:.2f} %, drop {b.drop:+.2f} points); project: {project.folder}")
    return 0


def cmd_export(args) -> int:
    from workbench.core.artifact import ModelArtifact
    from workbench.core.errors import WorkbenchError
    from workbench.core.export import export_to_end
    from workbench.core.report import human_bytes

    if args.model and (Path(args.model) / "project.json").is_file():
        request = _project_export_request(args)
    else:
        if args.variant:
            raise WorkbenchError("--variant needs a project folder as the model", "pass the project's folder")
        artifact = ModelArtifact.from_graph(open_from_args(args))
        request = _options_export_request(args, artifact)
    quiet = args.json or not sys.stderr.isatty()
    result = export_to_end(request, on_progress=None if quiet else _progress_line)
    if not quiet:
        sys.stderr.write("\n")
    deploy = result.deploy
    if args.json:
        json.dump({"out": str(result.out), "default_model": deploy["default_model"], "files": deploy["files"],
                   "validation": deploy["validation"], "metrics": deploy["metrics"]}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    total = sum(f["bytes"] for f in deploy["files"].values())
    print(f"wrote {result.out} ({len(deploy['files']) + 2} files, {human_bytes(total)})")
    for check in deploy["validation"]["checks"]:
        agreement = f"top-1 agreement {100 * check['top1_agreement']:.1f} %"
        print(f"  {check['model']}: vs {check['reference']}: max abs diff {check['max_abs_diff']:.3g}, {agreement}")
    for m in deploy["metrics"]:
        how = ", ".join(f"{k} {v}" for k, v in m["how"].items()) if isinstance(m.get("how"), dict) else m.get("how")
        value = f"{100 * m['value']:.2f} %" if m.get("unit") == "fraction" else f"{m['value']:.4g} {m.get('unit', '')}"
        print(f"  {m.get('model') or 'package'}: {m['name']} {value} ({m['provenance']}: {how})")
    where = result.out if result.out.suffix != ".zip" else f"{result.out.stem} (after unzipping)"
    print(f"  try it: cd {where} && pip install -r requirements.txt && python infer.py")
    return 0


def cmd_archs(args) -> int:
    from workbench.core import architectures

    for name in architectures.names():
        spec = architectures.ARCHITECTURES[name]
        shape = "x".join(map(str, spec.default_input_shape))
        print(f"{name:<14} {shape:<14} {spec.description}")
    return 0


def cmd_bench(args) -> int:
    import os

    from workbench.core.artifact import ModelArtifact
    from workbench.devices import BenchConfig, parse_device

    token = args.token or os.environ.get("WORKBENCH_AGENT_TOKEN")
    device = parse_device(args.device, token=token, provider=args.provider)
    artifact = ModelArtifact.from_graph(open_from_args(args))
    config = BenchConfig(warmup=args.warmup, runs=args.runs, threads=args.threads, timeout_s=args.timeout)
    quiet = args.json or not sys.stderr.isatty()
    steps = device.benchmark_steps(artifact, config)
    while True:
        try:
            progress = next(steps)
        except StopIteration as stop:
            report = stop.value
            break
        if not quiet:
            _progress_line(progress)
    if not quiet:
        sys.stderr.write("\n")
    if args.json:
        json.dump({"device": report.device, "p50_ms": report.p50_ms, "p90_ms": report.p90_ms,
                   "p99_ms": report.p99_ms, "min_ms": report.min_ms, "std_ms": report.std_ms, "runs": report.runs,
                   "threads": report.threads, "load_ms": report.load_ms,
                   "first_inference_ms": report.first_inference_ms, "input_shapes": report.input_shapes,
                   "ops": [vars(op) for op in report.ops], "device_info": report.device_info}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    info = report.device_info
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in report.input_shapes.items())
    print(f"p50 {report.p50_ms:.3f} ms  (p90 {report.p90_ms:.3f}, p99 {report.p99_ms:.3f}, min {report.min_ms:.3f}, "
          f"std {report.std_ms:.3f} ms; {report.runs} runs after {report.warmup} warm-up, {report.threads} thread"
          f"{'s' if report.threads != 1 else ''})")
    print(f"measured on {report.device}: {info.get('cpu_model', '?')}, {info.get('cores', '?')} cores, "
          f"onnxruntime {info.get('onnxruntime', '?')}; input {shapes}")
    print(f"load {report.load_ms:.1f} ms, first inference {report.first_inference_ms:.2f} ms")
    if report.ops:
        print("slowest operators (ONNX Runtime profiler, mean ms per run):")
        for op in report.ops[:10]:
            print(f"  {op.mean_ms:8.3f}  {op.op_type:<18} {op.name}")
    return 0


def cmd_report(args) -> int:
    import os

    from workbench.core.project import Project

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # a PDF needs Qt, never a display
    from workbench.gui.report_actions import save_report

    project = Project.open(Path(args.project))
    path = save_report(project, Path(args.out), device=args.device, title=args.title)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def cmd_demo(args) -> int:
    import os

    from workbench.core.demo_pipeline import demo_folder

    folder = Path(args.out) if args.out else demo_folder()
    if not args.headless:
        from workbench.core.demo_pipeline import prepare_demo_project
        from workbench.gui.app import run

        project = prepare_demo_project(folder)
        return run(project=str(project.folder), tour=not args.no_tour)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from workbench.core.demo_pipeline import QUICK, DemoSettings, run_demo, summary_lines
    from workbench.core.methods import run_to_end
    from workbench.gui.report_actions import save_report

    quiet = not sys.stderr.isatty()
    result = run_to_end(run_demo(folder / "project", QUICK if args.quick else DemoSettings()),
                        None if quiet else _progress_line)
    if not quiet:
        sys.stderr.write("\n")
    for line in summary_lines(result):
        print(line)
    for name in ("report.html", "report.pdf"):
        path = save_report(result.project, folder / name)
        print(f"wrote {path}")
    return 0


def cmd_agent(args) -> int:
    from workbench.agent import server

    argv = ["--host", args.host, "--port", str(args.port)]
    for flag, value in (("--token", args.token), ("--store", args.store), ("--max-upload-mb", args.max_upload_mb),
                        ("--job-timeout", args.job_timeout)):
        if value is not None:
            argv += [flag, str(value)]
    return server.main(argv)


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # in a frozen app, search's worker processes start through this entry point
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
    handler = {"inspect": cmd_inspect, "archs": cmd_archs, "gui": cmd_gui, "methods": cmd_methods,
               "apply": cmd_apply, "run": cmd_run, "export": cmd_export, "bench": cmd_bench,
               "agent": cmd_agent, "report": cmd_report, "demo": cmd_demo, "search": cmd_search}[args.command]
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
