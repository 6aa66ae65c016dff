"""`workbench demo --headless` and `workbench report` as a user runs them (the demo trains: minutes, so slow)."""

from __future__ import annotations

import json
import re
import time

import pytest

from chromium import render
from cli_process import run_cli as run
from pdf_text import compact, page_numbers, page_text, read_pdf
from workbench.core.project import Project

STEPS = {"prune.channels", "finetune", "quantize.int8_static", "distill.kd"}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    started = time.perf_counter()
    proc = run("demo", "--headless", "--quick", "--out", str(out))
    print(f"workbench demo --headless --quick: {time.perf_counter() - started:.1f} s")
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


@pytest.mark.slow
def test_demo_writes_a_project_with_four_measured_variants(demo_out):
    out, stdout = demo_out
    project = Project.open(out / "project")
    assert project.recovery.clean
    variants = list(project.variants.values())
    assert len(variants) == 5 and all(v.status == "done" for v in variants)
    assert {v.step.method for v in variants if v.step} == STEPS
    for v in variants:  # every figure measured: counted, evaluated, timed
        assert v.params.provenance == v.macs.provenance == v.size_bytes.provenance == "measured", v.name
        assert v.accuracy_on().samples == 1000 and v.latency[-1].runs == 50, v.name
    tuned = next(v for v in variants if v.step and v.step.method == "finetune")
    assert project.variant(tuned.parent).step.method == "prune.channels"
    assert tuned.size_bytes.value < 0.5 * project.variant("base").size_bytes.value
    log = json.loads((out / "project" / "demo-run.json").read_text())
    assert set(log["seconds"]) == {v.id for v in variants} | {"latency", "total"}
    assert "demo pipeline:" in stdout and "report.html" in stdout and "report.pdf" in stdout


@pytest.mark.slow
def test_demo_report_html_and_pdf_show_every_variant(demo_out, chromium):
    out, _ = demo_out
    project = Project.open(out / "project")
    html = (out / "report.html").read_text()
    for v in project.variants.values():
        row = re.search(rf'<tr id="row-{v.id}">(.*?)</tr>', html, re.S).group(1)
        assert row.count('class="prov">measured') == 7, v.name
    pdf = read_pdf((out / "report.pdf").read_bytes())
    text = compact("".join(page_text(pdf, p) for p in page_numbers(pdf)))
    for v in project.variants.values():
        assert compact(v.name) in text, v.name
    result = render(out / "report.html", executable=chromium)
    assert result.errors == []
    (out / "report.png").write_bytes(result.screenshot)


@pytest.mark.slow
def test_report_command(demo_out, tmp_path):
    out, _ = demo_out
    proc = run("report", str(out / "project"), "--out", str(tmp_path / "again.pdf"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again.pdf").read_bytes().startswith(b"%PDF-")
    bad = run("report", str(out / "project"), "--out", str(tmp_path / "report.txt"), timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and ".html or .pdf" in bad.stderr
    again = run("demo", "--headless", "--quick", "--out", str(out), timeout=120)
    assert again.returncode == 2 and "already holds a project" in again.stderr
