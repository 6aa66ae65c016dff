"""A project: base model, dataset, devices and the experiment tree of variants, saved as a folder.

``project.json`` (with ``schema_version``) and ``artifacts/`` hold everything. Writes are atomic; every change goes
through the command stack (undo/redo) and tells the listeners; ``autosave`` writes only when something changed.
Opening repairs what a crash can leave: temp files of an interrupted write are removed, artifacts no variant
references are reported (``clean_orphans`` removes them), and a variant that was running reopens as interrupted.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .commands import Command, CommandStack
from .datasets import DatasetConfig
from .errors import WorkbenchError
from .fileio import leftover_temps, write_atomic
from .migrations import SCHEMA_VERSION, migrate
from .modelspec import ModelSpec
from .variants import AccuracyMetric, Figure, LatencyMetric, Step, Variant

PROJECT_FILE = "project.json"
ARTIFACTS = "artifacts"
ROOT_ID = "base"
PARTIAL_SUFFIXES = (".part", ".part.onnx", ".part.pt2")


@dataclass(frozen=True)
class Change:
    """What changed, for listeners: kind is variant, dataset, base, device, project, undo, redo or saved."""

    kind: str
    variant_id: str | None = None
    label: str = ""


@dataclass
class RecoveryReport:
    """What opening found and repaired after a crash."""

    removed_temps: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # artifacts no variant references (kept until clean_orphans)
    interrupted: list[str] = field(default_factory=list)  # variants that were running

    @property
    def clean(self) -> bool:
        return not (self.removed_temps or self.orphans or self.interrupted)


def _locked(method):
    """Run the method under the project's lock: a check and the change it allows, or a read-modify-write, happen
    as one step for every thread."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class Project:
    """Use :meth:`create` or :meth:`open`. Read state through the properties; change it through the methods.

    Thread-safe: the GUI measures one variant while a method makes another, each on its own thread. Changes are
    serialised by one re-entrant lock, and the variants and devices are replaced, never changed in place, so a
    reader iterating :attr:`variants` holds a consistent snapshot while another thread adds to the project.
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = Path(folder)
        self._name = name
        self._seed = 0
        self._base: ModelSpec | None = None
        self._dataset: DatasetConfig | None = None
        self._devices: list[dict[str, Any]] = []
        self._variants: dict[str, Variant] = {}
        self._next_id = 1
        self._stack = CommandStack()
        self._listeners: list[Callable[[Change], None]] = []
        self._lock = threading.RLock()
        self.dirty = False
        self.recovery = RecoveryReport()

    # ---- files -----------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, name: str | None = None) -> "Project":
        folder = Path(folder)
        if (folder / PROJECT_FILE).exists():
            raise WorkbenchError("the folder already holds a project", "open it, or choose an empty folder", folder)
        project = cls(folder, name or folder.name)
        project.artifacts_dir.mkdir(parents=True, exist_ok=True)
        project.save()
        return project

    @classmethod
    def open(cls, folder: Path) -> "Project":
        folder = Path(folder)
        path = folder / PROJECT_FILE
        report = RecoveryReport(removed_temps=[p.name for p in leftover_temps(folder)])
        for temp in leftover_temps(folder):
            temp.unlink()
        if not path.is_file():
            raise WorkbenchError("no project.json here", "open a project folder, or create a project", folder)
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise WorkbenchError(f"project.json cannot be read ({exc})", "restore it from a backup", path) from None
        project = cls._from_doc(folder, migrate(doc, str(path)))
        migrated = doc.get("schema_version") != SCHEMA_VERSION
        for v in list(project._variants.values()):
            if v.status == "running":
                project._set_variant(v.with_changes(status="interrupted",
                                                    error="the app stopped while this variant was running"))
                report.interrupted.append(v.id)
        artifacts = project.artifacts_dir
        artifacts.mkdir(exist_ok=True)
        for temp in leftover_temps(artifacts) + [p for p in artifacts.rglob("*") if p.name.endswith(PARTIAL_SUFFIXES)]:
            report.removed_temps.append(f"{ARTIFACTS}/{temp.relative_to(artifacts)}")
            temp.unlink()
        report.orphans = [f"{ARTIFACTS}/{p}" for p in project._orphans()]
        project.recovery = report
        project.dirty = bool(report.interrupted) or migrated
        return project

    @property
    def artifacts_dir(self) -> Path:
        return self.folder / ARTIFACTS

    def artifact_path(self, relative: str) -> Path:
        return self.artifacts_dir / relative

    @_locked
    def to_doc(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "name": self._name, "seed": self._seed,
                "base_model": self._base.model_dump(mode="json") if self._base else None,
                "dataset": self._dataset.to_dict() if self._dataset else None,
                "devices": [dict(d) for d in self._devices],
                "variants": [v.to_dict() for v in self._variants.values()], "next_id": self._next_id}

    @classmethod
    def _from_doc(cls, folder: Path, doc: dict) -> "Project":
        project = cls(folder, doc.get("name") or folder.name)
        try:
            project._seed = int(doc.get("seed", 0))
            project._base = ModelSpec.model_validate(doc["base_model"]) if doc.get("base_model") else None
            project._dataset = DatasetConfig.model_validate(doc["dataset"]) if doc.get("dataset") else None
            project._devices = [dict(d) for d in doc.get("devices", [])]
            project._variants = {v["id"]: Variant.from_dict(v) for v in doc.get("variants", [])}
        except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            problem = str(exc).splitlines()[0]
            raise WorkbenchError(f"project.json is damaged ({problem})", "restore it from a backup",
                                 folder / PROJECT_FILE) from None
        project._next_id = int(doc.get("next_id", len(project._variants) + 1))
        return project

    def save(self) -> None:
        with self._lock:  # no change slips in between the snapshot and clearing ``dirty``
            write_atomic(self.folder / PROJECT_FILE, json.dumps(self.to_doc(), indent=1))
            self.dirty = False
        self._notify(Change("saved"))

    @_locked
    def autosave(self) -> bool:
        """Save when something changed since the last save; returns whether it wrote."""
        if not self.dirty:
            return False
        self.save()
        return True

    def referenced_files(self) -> set[str]:
        refs: set[str] = set()
        for v in self._variants.values():
            for rel in (v.artifact, v.deploy):
                if rel:
                    refs.add(rel)
                    if rel.endswith(".pt2"):
                        refs.add(str(Path(rel).with_suffix(".module.pt")))
        return refs

    def _orphans(self) -> list[str]:
        refs = self.referenced_files()
        files = [str(p.relative_to(self.artifacts_dir)) for p in self.artifacts_dir.rglob("*") if p.is_file()]
        return sorted(f for f in files if f not in refs)

    def clean_orphans(self) -> list[str]:
        """Delete artifact files no variant references (also those of variants removed and not undone)."""
        removed = self._orphans()
        for rel in removed:
            self.artifact_path(rel).unlink()
        self._stack.clear()  # undoing a removal could now point at a deleted file
        return removed

    # ---- reading ---------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def base_model(self) -> ModelSpec | None:
        return self._base

    @property
    def dataset(self) -> DatasetConfig | None:
        return self._dataset

    @property
    def devices(self) -> list[dict[str, Any]]:
        return [dict(d) for d in self._devices]

    @property
    def variants(self) -> Mapping[str, Variant]:
        return MappingProxyType(self._variants)

    def variant(self, variant_id: str) -> Variant:
        try:
            return self._variants[variant_id]
        except KeyError:
            raise WorkbenchError(f"no variant '{variant_id}' in the project",
                                 f"variants: {', '.join(self._variants) or 'none'}") from None

    def children(self, variant_id: str) -> list[Variant]:
        return [v for v in self._variants.values() if v.parent == variant_id]

    def lineage(self, variant_id: str) -> list[Variant]:
        """The chain from the base model to ``variant_id``, base first."""
        chain = []
        current: str | None = variant_id
        while current is not None:
            v = self.variant(current)
            chain.append(v)
            current = v.parent
        return chain[::-1]

    def _subtree(self, variant_id: str) -> list[Variant]:
        out = [self.variant(variant_id)]
        for child in self.children(variant_id):
            out += self._subtree(child.id)
        return out

    def _set_variant(self, variant: Variant) -> None:
        self._variants = {**self._variants, variant.id: variant}

    def _drop_variants(self, *variant_ids: str) -> None:
        self._variants = {k: v for k, v in self._variants.items() if k not in variant_ids}

    # ---- listeners and undo ----------------------------------------------------------------------------------
    def add_listener(self, callback: Callable[[Change], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[Change], None]) -> None:
        self._listeners.remove(callback)

    def _notify(self, change: Change) -> None:
        for callback in list(self._listeners):
            callback(change)

    @property
    def can_undo(self) -> bool:
        return self._stack.can_undo

    @property
    def can_redo(self) -> bool:
        return self._stack.can_redo

    @property
    def undo_label(self) -> str:
        return self._stack.undo_label

    @property
    def redo_label(self) -> str:
        return self._stack.redo_label

    def undo(self) -> None:
        with self._lock:
            command = self._stack.undo()
            if command:
                self.dirty = True
        if command:
            self._notify(Change("undo", label=command.label))

    def redo(self) -> None:
        with self._lock:
            command = self._stack.redo()
            if command:
                self.dirty = True
        if command:
            self._notify(Change("redo", label=command.label))

    def _push(self, label: str, kind: str, do: Callable[[], None], undo: Callable[[], None],
              variant_id: str | None = None) -> None:
        with self._lock:
            self._stack.push(Command(label, do, undo))
            self.dirty = True
        self._notify(Change(kind, variant_id, label))

    def _attr_command(self, label: str, kind: str, attr: str, value: Any) -> None:
        old = getattr(self, attr)
        self._push(label, kind, lambda: setattr(self, attr, value), lambda: setattr(self, attr, old))

    # ---- changes (each one undoable) -------------------------------------------------------------------------
    def rename_project(self, name: str) -> None:
        self._attr_command(f"Rename project to {name}", "project", "_name", name)

    def set_seed(self, seed: int) -> None:
        self._attr_command(f"Set seed {seed}", "project", "_seed", int(seed))

    def set_dataset(self, config: DatasetConfig | None) -> None:
        self._attr_command(f"Set dataset {config.kind if config else 'none'}", "dataset", "_dataset", config)

    @_locked
    def set_base_model(self, spec: ModelSpec) -> None:
        """Choose the base model; the root variant is (re)created. Refused once variants derive from it."""
        if any(v.parent is not None for v in self._variants.values()):
            raise WorkbenchError("the project already has variants made from its base model",
                                 "remove them first, or start a new project for another model")
        old_base, old_root = self._base, self._variants.get(ROOT_ID)
        root = Variant(ROOT_ID, None, "base model", status="planned")

        def do():
            self._base = spec
            self._set_variant(root)

        def undo():
            self._base = old_base
            if old_root is None:
                self._drop_variants(ROOT_ID)
            else:
                self._set_variant(old_root)

        self._push(f"Set base model {Path(spec.path).name}", "base", do, undo, ROOT_ID)

    @_locked
    def add_device(self, device: dict[str, Any]) -> None:
        """A device where latency is measured: a dict with at least a unique ``name``."""
        if not device.get("name"):
            raise WorkbenchError("a device needs a name", "name it, e.g. local or board-1")
        if any(d["name"] == device["name"] for d in self._devices):
            raise WorkbenchError(f"the project already has a device named '{device['name']}'", "pick another name")
        entry = dict(device)
        self._push(f"Add device {entry['name']}", "device", lambda: setattr(self, "_devices", self._devices + [entry]),
                   lambda: setattr(self, "_devices", [d for d in self._devices if d is not entry]))

    @_locked
    def remove_device(self, name: str) -> None:
        found = [d for d in self._devices if d["name"] == name]
        if not found:
            raise WorkbenchError(f"no device named '{name}'", "see the project's devices")
        entry, index = found[0], self._devices.index(found[0])
        self._push(f"Remove device {name}", "device",
                   lambda: setattr(self, "_devices", [d for d in self._devices if d is not entry]),
                   lambda: setattr(self, "_devices", self._devices[:index] + [entry] + self._devices[index:]))

    @_locked
    def new_variant_id(self) -> str:
        """A fresh id (``v7``); ids are never handed out twice, so a removed variant's files cannot be mistaken."""
        while f"v{self._next_id}" in self._variants:
            self._next_id += 1
        self._next_id += 1
        return f"v{self._next_id - 1}"

    def _reserve(self, variant_id: str) -> None:
        if variant_id[:1] == "v" and variant_id[1:].isdigit():
            self._next_id = max(self._next_id, int(variant_id[1:]) + 1)

    @_locked
    def add_variant(self, variant: Variant, label: str = "") -> None:
        if variant.id in self._variants:
            raise WorkbenchError(f"the project already has a variant '{variant.id}'", "use a new id")
        if variant.parent is not None:
            self.variant(variant.parent)
        self._reserve(variant.id)

        self._push(label or f"Add {variant.name}", "variant", lambda: self._set_variant(variant),
                   lambda: self._drop_variants(variant.id), variant.id)

    def plan_variant(self, parent: str, step: Step, graph=None, name: str = "") -> Variant:
        """A planned child of ``parent``; with the parent's LayerGraph its figures are the method's estimate."""
        from .methods import get

        method = get(step.method)
        params = method.parse_params(step.params)
        figures: dict[str, Figure] = {}
        if graph is not None:
            est = method.estimate(graph, params)
            figures = {"params": Figure(est.params, "estimated"), "macs": Figure(est.macs, "estimated"),
                       "size_bytes": Figure(est.size_bytes, "estimated")}
        variant = Variant(self.new_variant_id(), parent, name or step.method, step=step, status="planned", **figures)
        self.add_variant(variant, f"Plan {step.method}")
        return variant

    @_locked
    def remove_variant(self, variant_id: str) -> None:
        """Remove a variant and everything derived from it (their files stay until :meth:`clean_orphans`)."""
        if variant_id == ROOT_ID:
            raise WorkbenchError("the base model's variant cannot be removed", "set another base model instead")
        gone = self._subtree(variant_id)
        if any(v.status == "running" for v in gone):
            raise WorkbenchError("a variant in that branch is running", "cancel the run first")
        order = list(self._variants)

        def do():
            self._drop_variants(*(v.id for v in gone))

        def undo():
            merged = {**self._variants, **{v.id: v for v in gone}}
            place = {k: i for i, k in enumerate(order)}
            self._variants = {k: merged[k] for k in sorted(merged, key=lambda k: place.get(k, len(order)))}

        self._push(f"Remove {self._variants[variant_id].name}", "variant", do, undo, variant_id)

    def rename(self, variant_id: str, name: str) -> None:
        self._replace(self.variant(variant_id).with_changes(name=name), f"Rename to {name}")

    @_locked
    def record_accuracy(self, variant_id: str, value: AccuracyMetric) -> None:
        v = self.variant(variant_id)  # read, add, replace: no other thread's measurement is lost in between
        self._replace(v.with_changes(accuracy=v.accuracy + (value,)), f"Accuracy of {v.name}")

    @_locked
    def record_latency(self, variant_id: str, value: LatencyMetric) -> None:
        v = self.variant(variant_id)
        self._replace(v.with_changes(latency=v.latency + (value,)), f"Latency of {v.name} on {value.device}")

    @_locked
    def record_figures(self, variant_id: str, **figures: Figure) -> None:
        """Counted params / MACs / size of a variant's real file (replacing estimates)."""
        v = self.variant(variant_id)
        self._replace(v.with_changes(**figures), f"Figures of {v.name}")

    @_locked
    def merge_measurement(self, before: Variant, after: Variant, label: str) -> Variant:
        """Record what measuring took ``before`` to (``after``: a deploy file, counted figures, appended accuracy
        and latency) onto the variant as it is now, which another thread may have measured meanwhile; nothing that
        thread recorded is overwritten. Returns the variant as recorded."""
        current = self.variant(before.id)
        changes = {name: getattr(after, name) for name in ("deploy", "params", "macs", "size_bytes", "status")
                   if getattr(after, name) != getattr(before, name)
                   and getattr(current, name) == getattr(before, name)}
        merged = current.with_changes(accuracy=current.accuracy + after.accuracy[len(before.accuracy):],
                                      latency=current.latency + after.latency[len(before.latency):], **changes)
        if merged != current:
            self._replace(merged, label)
        return merged

    def update_variant(self, new: Variant, label: str) -> None:
        """Replace a variant's record (one undo step); measured variants only take a new name or measurements."""
        self._replace(new, label)

    @_locked
    def _replace(self, new: Variant, label: str) -> None:
        old = self.variant(new.id)
        check_replace(old, new)
        self._push(label, "variant", lambda: self._set_variant(new), lambda: self._set_variant(old), new.id)

    # ---- runs (used by workbench.core.runner) ----------------------------------------------------------------
    def start_run(self, variant: Variant) -> None:
        """Show a variant as running. Not an undo step: :meth:`end_run` records the whole run as one."""
        with self._lock:
            if variant.id in self._variants and self._variants[variant.id].status == "running":
                raise WorkbenchError(f"{variant.name} is already running", "wait for it or cancel it")
            self._set_variant(variant.with_changes(status="running", error=""))
            self._reserve(variant.id)
            self.dirty = True
        self._notify(Change("variant", variant.id, f"Running {variant.name}"))

    def end_run(self, final: Variant, previous: Variant | None, label: str) -> None:
        """Record a finished (done / failed / cancelled) run as one undo step; undo restores ``previous``."""

        def undo():
            if previous is None:
                self._drop_variants(final.id)
            else:
                self._set_variant(previous)

        self._push(label, "variant", lambda: self._set_variant(final), undo, final.id)


def check_replace(old: Variant, new: Variant) -> None:
    """Measured variants are immutable: only the name changes and measurements are appended."""
    if not old.measured:
        return
    if (new.step, new.artifact, new.deploy, new.parent) != (old.step, old.artifact, old.deploy, old.parent):
        raise WorkbenchError(f"{old.name} has been measured, so its step and files cannot change",
                             "apply the step again to make a new variant")
    if new.accuracy[:len(old.accuracy)] != old.accuracy or new.latency[:len(old.latency)] != old.latency:
        raise WorkbenchError(f"{old.name}: measurements are kept; new ones are added", "record a new measurement")
    for figure in ("params", "macs", "size_bytes"):
        before = getattr(old, figure)
        if before is not None and before.provenance == "measured" and getattr(new, figure) != before:
            raise WorkbenchError(f"{old.name}: its counted {figure} cannot change", "make a new variant")
