"""Schema migrations of project.json: one function per version step, applied in a chain on open.

Version 0 is the layout of the first prototype (``version``, ``title``, ``model``, ``data``, ``experiments``); it
lives on only in old folders, and in tests/fixtures/project_v0 to prove the chain works.
"""

from __future__ import annotations

from typing import Callable

from .errors import WorkbenchError

SCHEMA_VERSION = 1


def _v0_to_v1(doc: dict) -> dict:
    state = {"finished": "done", "error": "failed", "queued": "planned"}
    variants = []
    for e in doc.get("experiments", []):
        acc = e.get("accuracy")
        variants.append({
            "id": e["id"], "parent": e.get("parent"), "name": e.get("label") or e["id"],
            "step": {"method": e["method"], "params": e.get("params") or {}, "overrides": {}} if e.get("method")
            else None,
            "status": state.get(e.get("state", ""), e.get("state") or "planned"), "error": e.get("message", ""),
            "artifact": e.get("file"), "deploy": e.get("file") if str(e.get("file", "")).endswith(".onnx") else None,
            "params": None, "macs": None, "size_bytes": None,
            # v0 kept no dataset fingerprint: the figure stays, marked with the dataset name only.
            "accuracy": [{"top1": acc["top1"], "top5": acc["top5"], "loss": acc["loss"], "samples": acc["samples"],
                          "dataset": doc.get("data", ""), "fingerprint": "", "runtime": "onnxruntime",
                          "provenance": "measured"}] if acc else [],
            "latency": []})
    model = doc.get("model")
    data = doc.get("data")
    return {"schema_version": 1, "name": doc.get("title", "project"), "seed": 0,
            "base_model": {"path": model} if model else None,
            "dataset": ({"kind": "demo"} if data == "demo" else
                        {"kind": "npz" if str(data).endswith(".npz") else "image_folder", "path": data})
            if data else None,
            "devices": [], "variants": variants,
            "next_id": 1 + sum(1 for v in variants if v["parent"] is not None)}


MIGRATIONS: dict[int, Callable[[dict], dict]] = {0: _v0_to_v1}


def version_of(doc: dict) -> int:
    value = doc.get("schema_version", doc.get("version", 0))
    if not isinstance(value, int):
        raise WorkbenchError(f"project.json has schema version {value!r}", "the file is damaged")
    return value


def migrate(doc: dict, source: str = "") -> dict:
    """Bring a project document up to :data:`SCHEMA_VERSION`, one step at a time."""
    version = version_of(doc)
    if version > SCHEMA_VERSION:
        raise WorkbenchError(f"the project was saved by a newer Model Workbench (schema {version}, this one reads "
                             f"up to {SCHEMA_VERSION})", "update Model Workbench", source or None)
    while version < SCHEMA_VERSION:
        doc = MIGRATIONS[version](doc)
        version = version_of(doc)
    return doc
