"""What a search's worker process runs: a chain of steps in a scratch project of its own, measured.

The parent process owns the real project (it is not multi-process safe). A worker gets everything as plain data —
the base model and dataset with absolute paths, the seed, the record and files of the variant to start from, the
steps — builds a throw-away project in its own temp folder and runs each step there with the normal runner
(``run_step``: same seeding, same measurement, so the figures equal a run in the real project). It returns the
records and file paths of the new variants; the parent copies the files in and records the variants.
"""

from __future__ import annotations

import os
import shutil
import signal
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .progress import CancelToken

START_ID = "start"
SUFFIXES = (".onnx", ".pt2", ".module.pt")
_token: CancelToken | None = None


class SharedToken(CancelToken):
    """A CancelToken backed by a multiprocessing Event, so the parent's Stop reaches running workers."""

    def __init__(self, event) -> None:  # noqa: D107 - replaces the thread event with a process-shared one
        self._event = event


def init_worker(event) -> None:
    """Pool initializer: share the cancel event; leave Ctrl-C to the parent, which stops workers through it."""
    global _token
    _token = SharedToken(event)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.filterwarnings("ignore")  # exporter chatter from several processes would bury the progress lines


@dataclass
class Job:
    """One chain to run. ``start`` is the record (``Variant.to_dict``) of the variant to start from, None for the
    base model; ``start_files`` maps a file suffix to that variant's file in the project."""

    base: dict
    dataset: dict
    seed: int
    steps: list[dict]
    work_dir: str
    start: dict | None = None
    start_files: dict[str, str] = field(default_factory=dict)
    latency_runs: int = 0


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # the runner never writes into a parent's files, so sharing them is safe
    except OSError:
        shutil.copyfile(src, dst)


def run_job(job: Job) -> dict[str, Any]:
    """Run ``job``; returns ``{"ok": True, "steps": [{"variant": record, "files": {suffix: path}}]}`` or
    ``{"ok": False, "cancelled": bool, "error": text}`` (errors travel as text: the parent records them)."""
    from .datasets import DatasetConfig
    from .errors import WorkbenchError
    from .methods import run_to_end
    from .modelspec import ModelSpec
    from .progress import Cancelled
    from .project import ROOT_ID, Project
    from .runner import local_latency, run_step
    from .variants import Step, Variant

    token = _token or CancelToken()
    try:
        token.check()
        scratch = Project.create(Path(job.work_dir) / "project", name="search worker")
        scratch.set_base_model(ModelSpec.model_validate(job.base))
        scratch.set_dataset(DatasetConfig.model_validate(job.dataset))
        scratch.set_seed(job.seed)
        current = ROOT_ID
        if job.start is not None:
            renamed = {}
            for suffix, src in job.start_files.items():
                _link_or_copy(Path(src), scratch.artifact_path(START_ID + suffix))
                renamed[suffix] = START_ID + suffix
            record = Variant.from_dict(job.start)
            scratch.add_variant(record.with_changes(
                id=START_ID, parent=ROOT_ID, artifact=_rename(record.artifact, renamed),
                deploy=_rename(record.deploy, renamed)))
            current = START_ID
        latency = local_latency(runs=job.latency_runs) if job.latency_runs else None
        out = []
        for step in job.steps:
            v = run_to_end(run_step(scratch, current, Step.from_dict(step), measure_latency=latency, token=token))
            files = {s: str(scratch.artifact_path(v.id + s)) for s in SUFFIXES
                     if scratch.artifact_path(v.id + s).is_file()}
            out.append({"variant": v.to_dict(), "files": files})
            current = v.id
        return {"ok": True, "steps": out}
    except Cancelled:
        return {"ok": False, "cancelled": True, "error": "cancelled"}
    except WorkbenchError as exc:
        return {"ok": False, "cancelled": False, "error": exc.one_line()}
    except Exception as exc:  # noqa: BLE001 - a method's crash is this candidate's failure, not the search's
        return {"ok": False, "cancelled": False, "error": f"unexpected {type(exc).__name__}: {exc}"}


def _rename(rel: str | None, renamed: dict[str, str]) -> str | None:
    if rel is None:
        return None
    return next((new for suffix, new in renamed.items() if rel.endswith(suffix)), rel)
