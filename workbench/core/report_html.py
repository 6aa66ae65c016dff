"""The project report: one self-contained HTML file (inline SVG charts, data: URIs, no scripts, no fetches).

Sections: summary, variants table (every figure with its provenance), comparison with the base model, accuracy
against size and latency with the Pareto front, MACs per layer of the base model, how each figure was measured,
the recipes that reproduce the results, the environment. The PDF (``workbench.gui.report_pdf``) renders the same
HTML with Qt; it passes ``picture`` to turn each SVG into an image Qt's text engine can place.
"""

from __future__ import annotations

import base64
import json
import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Callable

from .errors import WorkbenchError
from .fileio import write_atomic
from .pareto import pareto_front
from .project import ROOT_ID, Project
from .report import human, human_bytes
from .report_svg import LayerBar, Point, layer_bars_svg, scatter_svg
from .variants import ESTIMATED, MEASURED, Figure, Variant

RUN_LOG = "demo-run.json"  # written by the demo pipeline next to project.json: wall time per stage
# (svg markup, alt text, css width in px) -> HTML that shows it; the default puts the SVG inline
Picture = Callable[[str, str, int], str]
CHART_W = 490  # two charts side by side in the 1,000 px column
MIN_LAYER_SHARE = 0.005  # layers with less of the model's MACs are summed in a note, not drawn


@dataclass(frozen=True)
class Row:
    """One variant of the report with the figures it shows."""

    variant: Variant
    top1: float | None  # percent
    top5: float | None
    latency: object | None  # LatencyMetric on the report's device

    @property
    def id(self) -> str:
        return self.variant.id


def inline_svg(svg: str, alt: str, width: int) -> str:
    return f'<figure class="chart">{svg}</figure>'


def _rows(project: Project, device: str | None) -> list[Row]:
    rows = []
    for v in project.variants.values():
        if v.status not in ("done", "planned"):
            continue
        acc = v.accuracy_on()
        lats = v.latency_by_device()
        lat = lats.get(device) if device else (v.latency[-1] if v.latency else None)
        rows.append(Row(v, 100 * acc.top1 if acc else None, 100 * acc.top5 if acc else None, lat))
    return rows


def _prov(kind: str, detail: str = "") -> str:
    cls = "prov est" if kind == ESTIMATED else "prov"
    return f'<br><span class="{cls}">{escape(kind)}{escape(detail)}</span>'


def _figure_cell(fig: Figure | None, fmt: Callable[[int], str]) -> str:
    if fig is None:
        return '<td class="num">–</td>'
    value = fmt(fig.value) if fig.provenance == MEASURED else "≈ " + fmt(fig.value)
    return f'<td class="num">{escape(value)}{_prov(fig.provenance)}</td>'


def step_text(v: Variant) -> str:
    if v.step is None:
        return "base model"
    params = ", ".join(f"{k}={val}" for k, val in v.step.params.items())
    overrides = f" +{len(v.step.overrides)} per-layer" if v.step.overrides else ""
    return v.step.method + (f" ({params})" if params else "") + overrides


def _latency_detail(m) -> str:
    return f"{m.device}, {m.runs} runs, {m.threads} thread{'s' if m.threads > 1 else ''}"


def _variants_table(rows: list[Row], names: dict[str, str]) -> str:
    """Details shared by every row (sample count, device and runs) go in the header, others in the cell."""
    accs = {(a.samples, a.dataset) for a in (r.variant.accuracy_on() for r in rows) if a}
    lats = {_latency_detail(r.latency) for r in rows if r.latency}
    acc_head = f"<br><span class='prov'>{next(iter(accs))[0]:,} samples</span>" if len(accs) == 1 else ""
    lat_head = f"<br><span class='prov'>{escape(next(iter(lats)))}</span>" if len(lats) == 1 else ""
    head = ("<tr><th width='90'>Variant</th><th width='120'>Made from</th><th class='num'>Params</th>"
            f"<th class='num'>MACs</th><th class='num'>Size on disk</th><th class='num'>Top-1{acc_head}</th>"
            f"<th class='num'>Top-5{acc_head}</th>"
            f"<th class='num'>Latency p50{lat_head}</th><th class='num'>p90</th></tr>")
    body = []
    for r in rows:
        v = r.variant
        acc = v.accuracy_on()
        acc_detail = f" · {acc.samples:,} samples" if acc and not acc_head else ""
        cells = [f'<td class="name"><b>{escape(v.name)}</b><br><span class="step">{escape(v.id)}</span></td>',
                 f'<td>{escape(names.get(v.parent or "", "—"))}<br><span class="step">{escape(step_text(v))}'
                 '</span></td>',
                 _figure_cell(v.params, human), _figure_cell(v.macs, human), _figure_cell(v.size_bytes, human_bytes)]
        for value in (r.top1, r.top5):
            cells.append(f'<td class="num">{value:.2f} %{_prov(MEASURED, acc_detail)}</td>' if value is not None
                         else '<td class="num">–<br><span class="prov">not measured</span></td>')
        lat = r.latency
        if lat is not None:
            detail = "" if lat_head else " · " + _latency_detail(lat)
            cells.append(f'<td class="num">{lat.p50:.3f} ms{_prov(lat.provenance, detail)}</td>')
            cells.append(f'<td class="num">{lat.p90:.3f} ms{_prov(lat.provenance)}</td>')
        else:
            cells += ['<td class="num">–<br><span class="prov">not measured</span></td>'] * 2
        body.append(f'<tr id="row-{escape(v.id)}">' + "".join(cells) + "</tr>")
    return f'<table class="variants">{head}{"".join(body)}</table>'


def _fronts(rows: list[Row]) -> tuple[set[str], set[str]]:
    size = pareto_front([(r.id, r.variant.size_bytes.value, r.top1) for r in rows
                         if r.top1 is not None and r.variant.size_bytes])
    lat = pareto_front([(r.id, r.latency.p50, r.top1) for r in rows if r.top1 is not None and r.latency])
    return set(size), set(lat)


def _speed(base_ms: float, ms: float, fmt: str) -> str:
    """'1.58× faster' (or slower) than the base model."""
    if base_ms >= ms:
        return f"{base_ms / ms:{fmt}}× faster"
    return f"{ms / base_ms:{fmt}}× slower"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "–"


def _comparison_table(rows: list[Row], base: Row | None) -> str:
    if base is None or not (base.variant.size_bytes or base.latency):
        return '<p class="muted">The base model is not measured yet: nothing to compare with.</p>'
    size_front, lat_front = _fronts(rows)
    head = ("<tr><th>Variant</th><th class='num'>Top-1 change</th><th class='num'>Size</th>"
            "<th class='num'>MACs</th><th class='num'>Latency p50</th><th>Pareto front</th></tr>")
    body = []
    for r in rows:
        v, b = r.variant, base.variant
        if v.id == base.id or v.status != "done":
            continue
        size = _ratio(v.size_bytes.value, b.size_bytes.value) if v.size_bytes and b.size_bytes else "–"
        macs = _ratio(v.macs.value, b.macs.value) if v.macs and b.macs and b.macs.value else "–"
        speed = "–"
        if r.latency and base.latency and r.latency.p50 > 0:
            speed = _speed(base.latency.p50, r.latency.p50, ".2f")
        front = ", ".join(name for name, ids in (("size", size_front), ("latency", lat_front)) if v.id in ids)
        if r.top1 is None or base.top1 is None:  # no dataset (yet): the cost side still compares
            change = "<td class='num'>–<br><span class='prov'>no accuracy</span></td>"
        else:
            delta = r.top1 - base.top1
            change = f"<td class='num {'good' if delta >= -1.0 else 'bad'}'>{delta:+.2f} points</td>"
        body.append(f"<tr><td><b>{escape(v.name)}</b></td>{change}"
                    f"<td class='num'>{size} of base</td><td class='num'>{macs} of base</td>"
                    f"<td class='num'>{speed}</td><td>{front or '—'}</td></tr>")
    return f'<table class="compare">{head}{"".join(body)}</table>'


def recommended(rows: list[Row], base: Row | None, max_drop: float = 1.0) -> Row | None:
    """The smallest measured variant whose top-1 is within ``max_drop`` points of the base model's."""
    if base is None or base.top1 is None:
        return None
    fit = [r for r in rows if r.id != base.id and r.top1 is not None and r.top1 >= base.top1 - max_drop
           and r.variant.size_bytes and r.variant.size_bytes.provenance == MEASURED]
    return min(fit, key=lambda r: (r.variant.size_bytes.value, -r.top1)) if fit else None


def _cards(rows: list[Row], base: Row | None, dataset: str) -> str:
    cards = []
    if base is not None and (base.top1 is not None or base.variant.size_bytes):
        size = human_bytes(base.variant.size_bytes.value) if base.variant.size_bytes else "–"
        lat = f"{base.latency.p50:.3f} ms p50" if base.latency else "latency not measured"
        top1 = f"{base.top1:.2f} % top-1" if base.top1 is not None else "no accuracy"
        cards.append(("Base model", top1, f"{size} · {lat} · {dataset}"))
    best = recommended(rows, base)
    if best is not None and base is not None:
        v, b = best.variant, base.variant
        parts = [f"{b.size_bytes.value / v.size_bytes.value:.1f}× smaller"]
        if best.latency and base.latency:
            parts.append(_speed(base.latency.p50, best.latency.p50, ".1f"))
        cards.append(("Recommended", v.name, f"{best.top1 - base.top1:+.2f} points top-1 · " + " · ".join(parts)
                      + " (smallest within 1 point of the base)"))
    measured = sum(1 for r in rows if r.variant.status == "done")
    accurate = sum(1 for r in rows if r.top1 is not None)
    cards.append(("Variants", f"{measured} measured", f"{len(rows)} in the project's tree"
                  + ("" if accurate == measured else f" · {accurate} with accuracy")))
    cells = '<td class="gap"></td>'.join(
        f'<td class="card"><span class="label">{escape(a)}</span><br><span class="big">{escape(b)}</span><br>'
        f'<span class="small">{escape(c)}</span></td>' for a, b, c in cards)
    return f'<table class="cards"><tr>{cells}</tr></table>'


def _size_unit(largest: float) -> tuple[float, str]:
    for div, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if largest >= 2 * div:
            return div, unit
    return 1, "B"


def _charts(rows: list[Row], picture: Picture) -> str:
    sized = [r for r in rows if r.top1 is not None and r.variant.size_bytes]
    div, unit = _size_unit(max((r.variant.size_bytes.value for r in sized), default=1))
    size_points = [Point(r.id, r.variant.name, r.variant.parent, r.variant.size_bytes.value / div, r.top1,
                         r.variant.size_bytes.provenance == MEASURED) for r in sized]
    lat_points = [Point(r.id, r.variant.name, r.variant.parent, r.latency.p50, r.top1)
                  for r in rows if r.top1 is not None and r.latency]
    size_svg = scatter_svg(size_points, f"size on disk of the ONNX file ({unit})", lambda v: f"{v:g}",
                           "Accuracy vs size", width=CHART_W)
    lat_svg = scatter_svg(lat_points, "latency p50 (ms, batch 1)", lambda v: f"{v:g}", "Accuracy vs latency",
                          width=CHART_W)
    return (picture(size_svg, "Top-1 accuracy against size on disk, with the Pareto front", CHART_W)
            + picture(lat_svg, "Top-1 accuracy against latency p50, with the Pareto front", CHART_W))


def _layers(project: Project, picture: Picture, graph_png: bytes | None, graph=None) -> str:
    from .modelspec import open_spec
    from .variants import layer_key

    if project.base_model is None:
        return '<p class="muted">No base model.</p>'
    if graph is None:
        graph, _ = open_spec(project.base_model, project.folder)
    total = graph.macs
    nodes = [n for n in graph.nodes if n.macs]
    shown = [n for n in nodes if total and n.macs >= MIN_LAYER_SHARE * total]
    rest = [n for n in nodes if n not in shown]
    note = ""
    if rest:
        note = (f"{len(rest)} smaller layers ({100 * sum(n.macs for n in rest) / total:.1f} % of the MACs) not drawn; "
                f"{sum(1 for n in graph.nodes if n.macs is None)} layers without a counting rule.")
    svg = layer_bars_svg([LayerBar(layer_key(n), n.op_type, n.macs) for n in shown], total,
                         f"MACs per layer of the base model ({human(total)} in all, counted from shapes)", note,
                         fmt=lambda v: human(int(v)))
    out = picture(svg, "MACs per layer of the base model, coloured by share", 760)
    if graph_png:
        src = "data:image/png;base64," + base64.b64encode(graph_png).decode()
        out += (f'<figure class="chart"><img src="{src}" alt="Layer graph of the base model, coloured by MACs" '
                'style="max-width:100%"></figure>')
    return out


def _recipes(project: Project, rows: list[Row]) -> str:
    from .recipes import dump_recipe, recipe_from_lineage

    done = {r.id for r in rows if r.variant.status == "done"}
    leaves = [r.variant for r in rows if r.id in done and r.id != ROOT_ID
              and not any(c.id in done for c in project.children(r.id))]
    out = []
    for v in leaves:
        try:
            text = dump_recipe(recipe_from_lineage(project, v.id))
        except WorkbenchError as exc:
            text = f"# cannot write this recipe: {exc.one_line()}"
        out.append(f'<td class="recipe"><h3>{escape(v.name)}</h3><pre>{escape(text)}</pre></td>')
    if not out:
        return '<p class="muted">No finished variant yet.</p>'
    rows = "".join("<tr>" + "".join(out[i:i + 3]) + "</tr>" for i in range(0, len(out), 3))
    return ("<p>Each recipe replays one branch of the tree with <code>workbench run RECIPE.yaml</code> "
            "(same seed, same steps, every variant measured again).</p>"
            f'<table class="recipes">{rows}</table>')


def _measurement(rows: list[Row], env: dict[str, str]) -> str:
    accs = [r.variant.accuracy_on() for r in rows if r.variant.accuracy_on()]
    lats = [r.latency for r in rows if r.latency]
    items = [
        "<li><b>Params, MACs</b> — counted from the model's graph with its static shapes (MACs = multiply-"
        "accumulates; FLOPs = 2 × MACs). <i>measured</i> means counted from the variant's real file; "
        "<i>estimated</i> means projected by the method before it ran.</li>",
        "<li><b>Size on disk</b> — bytes of the ONNX file that is evaluated and timed.</li>"]
    if any(r.variant.step and r.variant.step.method.startswith("quantize.") for r in rows):
        items.append("<li><b>MACs of quantized variants</b> are those of their layers: the QuantizeLinear / "
                     "DequantizeLinear markers count 0 because ONNX Runtime fuses them into integer kernels; an "
                     "int8 multiply-accumulate is cheaper than a float one, so latency is the figure to "
                     "compare.</li>")
    if accs:
        sets = sorted({(x.dataset, x.samples, x.fingerprint, x.runtime) for x in accs})
        text = "; ".join(f"{escape(d)}: {n:,} validation samples (data fingerprint {escape(fp[:12])}), run in "
                         f"{escape(rt)}" for d, n, fp, rt in sets)
        items.append(f"<li><b>Top-1 / top-5 accuracy</b> — share of validation samples whose label is the model's "
                     f"first / among its first five outputs. {text}. Every variant is scored on the same samples"
                     f"{'' if len(sets) == 1 else ' (several datasets appear: compare within one)'}.</li>")
    if lats:
        devices = sorted({(m.device, m.device_name, m.runs, m.threads) for m in lats})
        text = "; ".join(f"{escape(d)} ({escape(name or env.get('CPU', '?'))}): {runs} timed runs, {t} intra-op "
                         f"thread{'s' if t > 1 else ''}" for d, name, runs, t in devices)
        items.append("<li><b>Latency</b> — ONNX Runtime, batch 1, the same ONNX file as for accuracy; untimed "
                     f"warm-up runs first, then timed runs; p50 / p90 are the median and 90th percentile. {text}.</li>")
    return "<ul>" + "".join(items) + "</ul>"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, str]:
    """Where the report was made: OS, CPU, cores, Python and the versions of the libraries that measured."""
    from importlib import metadata

    from .. import __version__

    env = {"OS": platform.platform(), "CPU": cpu_model(), "Logical cores": str(os.cpu_count() or "?"),
           "Python": platform.python_version(), "Model Workbench": __version__}
    for package in ("torch", "onnxruntime", "onnx", "numpy", "torch-pruning"):
        try:
            env[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            env[package] = "not installed"
    return env


def read_run_log(folder: Path) -> dict | None:
    """The demo pipeline's timings (seconds per stage) when the project has them."""
    path = Path(folder) / RUN_LOG
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _table(pairs: list[tuple[str, str]]) -> str:
    return '<table class="kv">' + "".join(f'<tr><th width="25%">{escape(k)}</th><td>{escape(v)}</td></tr>'
                                          for k, v in pairs) + "</table>"


def _timings(log: dict | None, names: dict[str, str]) -> str:
    if not log:
        return ""
    seconds = log.get("seconds", {})
    labels = {**names, "latency": "latency of every variant (interleaved)", "total": "Total"}
    pairs = [(labels.get(k, k), f"{s:.1f} s") for k, s in seconds.items()]
    settings = ", ".join(f"{k}={v}" for k, v in (log.get("settings") or {}).items())
    return ("<h2>How long the demo took</h2>" + (f"<p>Settings: <code>{escape(settings)}</code></p>" if settings
                                                  else "") + _table(pairs))


CSS = """
body{margin:0;background:#f3f4f6;color:#1f2933;font-family:"DejaVu Sans","Segoe UI",Helvetica,Arial,sans-serif;
 font-size:14px;line-height:1.45}
main{max-width:1080px;margin:0 auto;padding:28px 40px 40px;background:#ffffff}
h1{font-size:26px;margin:0 0 2px;font-weight:700}
h2{font-size:18px;margin:30px 0 10px;padding-bottom:4px;border-bottom:1px solid #e4e7eb;color:#1f2933}
h3{font-size:14px;margin:14px 0 4px}
p.sub{color:#616e7c;margin:0 0 18px}
.muted{color:#616e7c}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;font-weight:600;color:#52606d;border-bottom:2px solid #cbd2d9;padding:6px 8px;background:#f7f8fa}
td{border-bottom:1px solid #e4e7eb;padding:6px 8px;vertical-align:top}
th.num,td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.good{color:#2b8a3e} td.bad{color:#c92a2a}
.prov{font-size:10.5px;color:#7b8794}
.prov.est{color:#e8590c;font-style:italic}
.step{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:11px;color:#616e7c}
table.cards{border-collapse:separate;border-spacing:0}
td.name{min-width:150px}
td.card{border:1px solid #d9e2ec;border-top:4px solid #2563eb;background:#f8fafc;padding:10px 14px;width:33%}
td.gap{width:12px;border:none;padding:0}
.label{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#616e7c}
.big{font-size:20px;font-weight:700;color:#1f2933}
.small{font-size:12px;color:#52606d}
figure.chart{display:inline-block;margin:6px 8px 6px 0;vertical-align:top}
table.kv th{width:180px;background:none;border-bottom:1px solid #e4e7eb}
pre{background:#f7f8fa;border:1px solid #e4e7eb;padding:10px 12px;font-size:12px;
 font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;white-space:pre-wrap}
code{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
ul{padding-left:20px} li{margin:4px 0}
td.recipe{border:none;padding:0 12px 0 0;width:33%}
footer{margin-top:30px;color:#7b8794;font-size:12px}
"""


def build_report(project: Project, *, title: str | None = None, device: str | None = None,
                 graph_png: bytes | None = None, run_log: dict | None = None,
                 picture: Picture = inline_svg, base_graph=None) -> str:
    """The report of ``project`` as one HTML document (a string).

    ``device`` picks whose latency is shown (default: each variant's latest measurement); ``graph_png`` adds a
    picture of the base model's graph (rendered by the GUI); ``run_log`` the demo's timings (default: read from
    the project folder); ``base_graph`` the base model's LayerGraph when the caller has it open already.
    """
    rows = _rows(project, device)
    if not rows:
        raise WorkbenchError("the project has no variants to report", "open a model and measure it first",
                             project.folder)
    names = {r.id: r.variant.name for r in rows}
    base = next((r for r in rows if r.id == ROOT_ID), None)
    env = environment()
    acc = base.variant.accuracy_on() if base else None
    dataset = f"{acc.dataset}, {acc.samples:,} samples" if acc else "no dataset measured"
    spec = project.base_model
    model = "the bundled demo digits model" if spec and spec.is_demo else (spec.path if spec else "none")
    when = datetime.now(timezone.utc).astimezone()
    title = title or f"{project.name} — compression report"
    run_log = run_log if run_log is not None else read_run_log(project.folder)
    failed = [v for v in project.variants.values() if v.status in ("failed", "cancelled", "interrupted")]
    failed_note = ("<p class='muted'>Not shown: " + "; ".join(f"{escape(v.name)} ({escape(v.status)}"
                                                              f"{': ' + escape(v.error) if v.error else ''})"
                                                              for v in failed) + "</p>") if failed else ""
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">Model: {escape(model)} · dataset: {escape(dataset)} · made {when:%Y-%m-%d %H:%M %Z} '
        f"with Model Workbench {escape(env['Model Workbench'])}</p>",
        _cards(rows, base, dataset),
        "<h2>Variants</h2>",
        '<p class="muted">Every figure says where it comes from: <i>measured</i> (counted from the file, run on '
        'the data, timed on the device) or <i>estimated</i> (projected before running).</p>',
        _variants_table(rows, names), failed_note,
        "<h2>Against the base model</h2>", _comparison_table(rows, base),
        '<h2 class="newpage">Accuracy against cost</h2>',
        '<p class="muted">Each point is a variant; grey lines join a variant to the one it was made from; the '
        "dashed line is the Pareto front (no other variant is both smaller or faster and more accurate).</p>",
        _charts(rows, picture),
        '<h2 class="newpage">Where the base model spends its compute</h2>', _layers(project, picture, graph_png, base_graph),
        "<h2>How each figure was measured</h2>", _measurement(rows, env),
        "<h2>Recipes</h2>", _recipes(project, rows),
        "<h2>Environment</h2>", _table(list(env.items())),
        _timings(run_log, names),
        f"<footer>Project folder: {escape(str(project.folder))}</footer>",
    ]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def write_report_html(project: Project, path: Path, **options) -> Path:
    """Build the report and write it atomically to ``path``."""
    path = Path(path)
    html = build_report(project, **options)
    try:
        write_atomic(path, html)
    except OSError as exc:
        raise WorkbenchError(f"cannot write the report ({exc.strerror or exc})", "choose a folder you can write to",
                             path) from None
    return path
