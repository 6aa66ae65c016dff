"""The dependency rule, proved in fresh interpreters (pytest-qt has already imported Qt into this one)."""

import subprocess
import sys
import textwrap

import pytest

HEADLESS = ["workbench.core", "workbench.core.readers", "workbench.core.readers.onnx_reader",
            "workbench.core.readers.torch_readers", "workbench.core.readers.torch_trace", "workbench.core.report",
            "workbench.core.architectures", "workbench.core.demo", "workbench.core.loader", "workbench.core.loading",
            "workbench.core.weights", "workbench.core.onnx_torch", "workbench.core.export",
            "workbench.core.export_checks", "workbench.core.export_writer", "workbench.core.export_card",
            "workbench.core.datasets", "workbench.core.project", "workbench.core.runner", "workbench.core.recipes",
            "workbench.core.evaluation", "workbench.core.project_export", "workbench.methods", "workbench.devices",
            "workbench.devices.local", "workbench.devices.agent", "workbench.devices.int8_verdict", "workbench.cli",
            "workbench.core.report_html", "workbench.core.report_svg", "workbench.core.demo_pipeline",
            "workbench.core.op_latency", "workbench.devices.compare", "workbench.core.search",
            "workbench.core.search_space", "workbench.core.search_worker", "workbench.core.search_types",
            "workbench.core.search_optuna", "workbench.core.child",
            "workbench.frozen"]


def _modules_after_import(module: str) -> set[str]:
    code = textwrap.dedent(f"""
        import importlib, sys
        importlib.import_module({module!r})
        print("\\n".join(sorted(sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_packages_import_no_qt(module):
    loaded = _modules_after_import(module)
    qt = sorted(m for m in loaded if m.split(".")[0] in {"PySide6", "shiboken6", "pyqtgraph", "workbench"}
                and (m.startswith(("PySide6", "shiboken6", "pyqtgraph")) or m.startswith("workbench.gui")))
    assert not qt, f"{module} pulls in {qt}"


def test_cli_and_core_load_torch_lazily():
    loaded = (_modules_after_import("workbench.cli") | _modules_after_import("workbench.core.readers")
              | _modules_after_import("workbench.core.onnx_torch"))
    assert "torch" not in loaded


@pytest.mark.parametrize("module", ["workbench.agent", "workbench.agent.server"])
def test_agent_imports_nothing_else_from_the_package(module):
    loaded = _modules_after_import(module)
    others = sorted(m for m in loaded if m.startswith("workbench.") and not m.startswith("workbench.agent"))
    assert not others, others
    assert not {"torch", "onnx", "pydantic"} & loaded  # a board has only numpy and onnxruntime


def test_devices_import_only_core():
    loaded = set()
    for module in ("workbench.devices", "workbench.devices.local", "workbench.devices.agent",
                   "workbench.devices.int8_verdict"):
        loaded |= _modules_after_import(module)
    outside = sorted(m for m in loaded if m.startswith("workbench.") and not m.startswith(("workbench.core",
                                                                                           "workbench.devices")))
    assert not outside, outside
