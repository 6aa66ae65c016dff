"""Search over compression settings: the smallest variant within X points of its parent's accuracy.

``search(project, config, token)`` is a generator (Progress out, CancelToken in) that tries candidates of a
:class:`~workbench.core.search_space.SearchSpace` — every combination (``grid``) or ``trials`` drawn by optuna
(multi-objective TPE or NSGA-II: minimise the cost and the accuracy drop, with the drop limit as a constraint).

- Candidates run in worker processes (``workers``; spawn), each in a scratch project (search_worker.py). Only this
  process changes the project: it copies a finished candidate's files in and records its variants, one per step,
  in submission order (so the same search gives the same variant ids whatever the timing).
- A chain of steps that already exists in the project as done variants under the same parent is reused, whole or
  as a prefix; a candidate waits rather than recompute a prefix another running candidate is making.
- Resume: finished candidates are kept in ``search/NAME.json`` (written atomically) and optuna's trials in
  ``search/NAME.db`` (SQLite); running the same search again continues where it stopped.
- Stop: the token stops new submissions, cancels queued work and reaches running workers through a shared event;
  what was not recorded is discarded (workers write only into their own temp folders).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import shutil
import tempfile
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator

from .errors import WorkbenchError
from .fileio import write_atomic
from .pareto import pareto_front
from .progress import CancelToken
from .project import ROOT_ID, Project
from .search_space import candidate_key
from .search_types import (JOURNAL_VERSION, OBJECTIVES, SEARCH_DIR, CandidateResult, SearchConfig, SearchProgress,
                           SearchResult)
from .search_worker import SUFFIXES, Job, init_worker, run_job
from .variants import Step, Variant

__all__ = ["OBJECTIVES", "CandidateResult", "SearchConfig", "SearchProgress", "SearchResult", "load_results",
           "search", "search_folder", "step_key"]

POLL_S = 0.2  # how often the scheduler looks at the cancel token while workers run


def search_folder(project: Project) -> Path:
    return project.folder / SEARCH_DIR


def search(project: Project, config: SearchConfig,
           token: CancelToken | None = None) -> Generator[SearchProgress, None, SearchResult]:
    """Run (or resume) the search ``config.name`` in ``project``; yields a SearchProgress per finished candidate.

    Raises Cancelled when stopped (finished candidates stay recorded and journalled) and WorkbenchError for a bad
    configuration.
    """
    return (yield from _Search(project, config, token or CancelToken()).run())


def load_results(project: Project, name: str) -> SearchResult | None:
    """The results of an earlier search from its journal and the project's variants (None if there is none)."""
    path = search_folder(project) / f"{name}.json"
    if not path.is_file():
        return None
    doc = _read_journal(path)
    s = _Search(project, SearchConfig.model_validate(doc["config"] | {"name": name}), CancelToken())
    s.fp = s._fingerprint()
    s._load_journal()
    return s._finish()


def _read_journal(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"the search journal cannot be read ({exc})", "remove it to start the search afresh",
                             path) from None
    if doc.get("schema_version") != JOURNAL_VERSION:
        raise WorkbenchError("the search journal has an unknown format", "remove it to start afresh", path)
    return doc


def step_key(step: Step) -> str:
    """A step's identity with its parameters parsed (defaults filled in), so {ratio: 0.2} meets the full set."""
    from .methods import get

    try:
        params = get(step.method).parse_params(step.params).model_dump(mode="json")
    except WorkbenchError:
        params = dict(step.params)
    return json.dumps([step.method, params, step.overrides], sort_keys=True)


@dataclass
class _Item:
    """A candidate on its way: resolved against the project, maybe running in a worker."""

    values: dict[str, Any]
    steps: list[Step]
    reused: list[str]  # ids of the existing prefix
    future: cf.Future | None = None
    work_dir: Path | None = None
    trial: Any = None  # an optuna Trial while one is asked and not told
    produces: set[str] = field(default_factory=set)
    job: Job | None = None
    retried: bool = False

    @property
    def key(self) -> str:
        return candidate_key(self.values)

    def finished(self) -> bool:
        return self.future is None or self.future.done()


class _Search:
    def __init__(self, project: Project, config: SearchConfig, token: CancelToken) -> None:
        self.project, self.config, self.token = project, config, token
        self.journal_path = search_folder(project) / f"{config.name}.json"
        self.results: dict[str, CandidateResult] = {}
        self.steps_run = 0
        self.done = 0
        self.total = 0
        self.fp = ""
        self._keys_by_text: dict[str, str] = {}  # step_key parses params: cache it per step text
        self._executor: cf.ProcessPoolExecutor | None = None
        self._event = None
        self._work: Path | None = None
        self._queue: list[_Item] = []
        self._latency = None
        self._study = None  # an OptunaStudy while an optuna search runs

    # ---- set-up ------------------------------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        from .datasets import fingerprint

        if self.project.dataset is None:
            raise WorkbenchError("the project has no dataset", "choose a dataset to measure accuracy on")
        return fingerprint(self.project.dataset, self.project.folder)

    def _check(self) -> None:
        p, c = self.project, self.config
        if p.base_model is None:
            raise WorkbenchError("the project has no base model", "open a model first")
        parent = p.variant(c.parent)
        if parent.id != ROOT_ID and parent.status != "done":
            raise WorkbenchError(f"the search's parent {parent.name} is {parent.status}", "pick a finished variant")
        c.space.check()
        if self.journal_path.is_file():
            old = _read_journal(self.journal_path)["config"]
            mine = c.identity()
            if {k: old.get(k) for k in mine} != mine:
                changed = sorted(k for k in mine if old.get(k) != mine[k])
                raise WorkbenchError(f"a search named '{c.name}' exists with another {', '.join(changed)}",
                                     "resume it with its settings, or give the new search another name",
                                     self.journal_path)

    def run(self) -> Generator[SearchProgress, None, SearchResult]:
        from .runner import local_latency

        self._check()
        self.fp = self._fingerprint()
        c = self.config
        self._latency = local_latency(runs=c.latency_runs) if c.latency_runs else None
        yield from self._measure(c.parent, "measuring the parent")
        self._load_journal()
        try:
            if c.strategy == "grid":
                yield from self._grid()
            else:
                yield from self._optuna()
        finally:
            self._stop()
        result = self._finish()
        self._write_journal()
        return result

    def _measure(self, variant_id: str, message: str) -> Generator[SearchProgress, None, None]:
        """Accuracy on this dataset (and latency when needed) for an existing variant, in this process."""
        from .runner import evaluate_variant

        v = self.project.variant(variant_id)
        need_latency = self._latency is not None and "local" not in v.latency_by_device()
        if v.accuracy_on(self.fp) is None or need_latency:
            gen = evaluate_variant(self.project, variant_id, self._latency if need_latency else None, self.token)
            while True:
                try:
                    p = next(gen)
                except StopIteration:
                    break
                yield SearchProgress(None, f"{message}: {p.message}", done=self.done, total=self.total)
            self.project.autosave()

    # ---- journal -------------------------------------------------------------------------------------------------
    def _load_journal(self) -> None:
        if not self.journal_path.is_file():
            return
        for d in _read_journal(self.journal_path)["candidates"]:
            r = CandidateResult.from_dict(d)
            if r.status == "done":
                r = self._refresh(r)
            if r is not None:
                self.results[r.key] = r

    def _refresh(self, r: CandidateResult) -> CandidateResult | None:
        """The journalled candidate with figures read from its variants again; None when they are gone."""
        vs = self.project.variants
        if any(i not in vs or (i != ROOT_ID and vs[i].status != "done") for i in r.chain + [r.variant_id]):
            return None
        if vs[r.variant_id].accuracy_on(self.fp) is None:
            return None
        return self._from_variants(r.values, r.chain, r.variant_id, r.trial, r.steps_run)

    def _write_journal(self) -> None:
        doc = {"schema_version": JOURNAL_VERSION, "config": self.config.model_dump(mode="json"),
               "candidates": [r.to_dict() for r in self.results.values()]}
        write_atomic(self.journal_path, json.dumps(doc, indent=1))

    # ---- figures -----------------------------------------------------------------------------------------------
    def _from_variants(self, values: dict, chain: list[str], final: str, trial: int | None = None,
                       steps_run: int = 0) -> CandidateResult:
        v = self.project.variant(final)
        acc = v.accuracy_on(self.fp)
        parent_acc = self.project.variant(self.config.parent).accuracy_on(self.fp)
        lat = v.latency_by_device().get("local")
        drop = round(100 * (parent_acc.top1 - acc.top1), 6) if acc and parent_acc else None
        steps = self.config.space.steps(values) if values else []
        return CandidateResult(
            candidate_key(values), dict(values), [s.to_dict() for s in steps],
            variant_id=final, chain=list(chain), size_bytes=v.size_bytes.value if v.size_bytes else None,
            params=v.params.value if v.params else None, macs=v.macs.value if v.macs else None,
            latency_p50=lat.p50 if lat else None, top1=acc.top1 if acc else None, drop=drop,
            feasible=drop is not None and drop <= self.config.max_drop + 1e-9, steps_run=steps_run, trial=trial)

    def _finish(self) -> SearchResult:
        c = self.config
        if c.strategy == "grid":
            order = [candidate_key(v) for v in c.space.grid()]
            cands = [self.results[k] for k in order if k in self.results]
        else:
            cands = list(self.results.values())
        for r in cands:  # feasibility follows the current limit (a grid may be resumed with another one)
            r.feasible = r.status == "done" and r.drop is not None and r.drop <= c.max_drop + 1e-9
        done = [r for r in cands if r.status == "done" and r.cost(c.minimise) is not None and r.top1 is not None]
        front = set(pareto_front([(r.key, float(r.cost(c.minimise)), r.top1) for r in done]))
        for r in cands:
            r.pareto = r.key in front
        feasible = [r for r in done if r.feasible]
        best = min(feasible, key=lambda r: (r.cost(c.minimise), -r.top1, len(r.steps))) if feasible else None
        parent = self._from_variants({}, [], c.parent)
        return SearchResult(c, parent, cands, best, self.steps_run)

    # ---- reuse ---------------------------------------------------------------------------------------------------
    def _key(self, step: Step) -> str:
        text = json.dumps(step.to_dict(), sort_keys=True)
        if text not in self._keys_by_text:
            self._keys_by_text[text] = step_key(step)
        return self._keys_by_text[text]

    def _chain_key(self, steps: list[Step]) -> str:
        return "|".join(self._key(s) for s in steps)

    def _child(self, parent_id: str, step: Step) -> Variant | None:
        key = self._key(step)
        for v in self.project.children(parent_id):
            if v.status == "done" and v.step is not None and self._key(v.step) == key:
                return v
        return None

    def _existing(self, steps: list[Step]) -> list[str]:
        """Ids of the done variants that already make the longest prefix of ``steps`` from the parent."""
        ids, current = [], self.config.parent
        for step in steps:
            child = self._child(current, step)
            if child is None:
                break
            ids.append(child.id)
            current = child.id
        return ids

    def _blocked(self, steps: list[Step]) -> bool:
        """Whether a queued candidate is making the next variant this one needs (wait and reuse it instead)."""
        have = len(self._existing(steps))
        if have == len(steps):
            return False
        needed = self._chain_key(steps[:have + 1])
        return any(needed in item.produces for item in self._queue)

    # ---- scheduling ----------------------------------------------------------------------------------------------
    def _running(self) -> int:
        return sum(1 for item in self._queue if item.future is not None and not item.future.done())

    def _submit(self, values: dict, trial=None) -> Generator[SearchProgress, None, _Item]:
        steps = self.config.space.steps(values)
        reused = self._existing(steps)
        for vid in reused:
            yield from self._measure(vid, "measuring a reused variant")
        item = _Item(values, steps, reused, trial=trial)
        if len(reused) < len(steps):
            item.produces = {self._chain_key(steps[:j]) for j in range(len(reused) + 1, len(steps) + 1)}
            item.work_dir = Path(tempfile.mkdtemp(prefix="job-", dir=self._workspace()))
            item.job = self._job(reused[-1] if reused else self.config.parent, steps[len(reused):], item.work_dir)
            item.future = self._pool().submit(run_job, item.job)
        self._queue.append(item)
        return item

    def _run_batch(self, todo: list[tuple[dict, Any]], reorder: bool) -> Generator[SearchProgress, None, None]:
        """Run candidates (values, optuna trial or None) with at most ``workers`` in flight, recording in order.
        With ``reorder`` a candidate waiting on another's prefix lets later ones go first."""
        todo = list(todo)
        while todo or self._queue:
            self.token.check()
            recorded = False
            while self._queue and self._queue[0].finished():  # first record, so reuse sees the new variants
                if self._retry_broken(self._queue[0]):
                    continue
                result = self._record(self._queue.pop(0))
                if result is not None:
                    self.done += 1
                    recorded = True
                    yield SearchProgress(self.done / max(1, self.total), f"{result.label}: {_summary(result)}",
                                         _metrics(result), candidate=result, done=self.done, total=self.total)
            if recorded:
                continue  # a Stop pressed meanwhile is seen before anything new is submitted
            while todo and self._running() < self.config.workers:
                pick = next((i for i, (values, _) in enumerate(todo if reorder else todo[:1])
                             if not self._blocked(self.config.space.steps(values))), None)
                if pick is None:
                    break
                values, trial = todo.pop(pick)
                yield from self._submit(values, trial)
            pending = [i.future for i in self._queue if i.future is not None and not i.future.done()]
            if pending and not self._queue[0].finished():
                cf.wait(pending, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)

    def _retry_broken(self, item: _Item) -> bool:
        """A worker process that died (a crash in native code, out of memory) breaks the whole pool and every job
        in it. Start a new pool and run each such candidate once more; one that breaks it again has failed."""
        if item.future is None or item.retried or not isinstance(item.future.exception(), BrokenProcessPool):
            return False
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        shutil.rmtree(item.work_dir, ignore_errors=True)
        item.work_dir.mkdir(parents=True)
        item.retried = True
        item.future = self._pool().submit(run_job, item.job)
        return True

    def _record(self, item: _Item) -> CandidateResult | None:
        """Adopt a finished candidate into the project and the journal (optuna hears of it too)."""
        chain, steps_run, error = list(item.reused), 0, ""
        if item.future is not None:
            try:
                out = item.future.result()
            except Exception as exc:  # noqa: BLE001 - a broken worker fails this candidate only
                out = {"ok": False, "cancelled": False, "error": f"worker process failed ({type(exc).__name__}: "
                                                                  f"{exc})"}
            if out["ok"]:
                chain += self._adopt(chain[-1] if chain else self.config.parent, out["steps"])
                steps_run = len(out["steps"])
            elif out.get("cancelled"):
                return None
            else:
                error = out["error"]
            shutil.rmtree(item.work_dir, ignore_errors=True)
        self.steps_run += steps_run
        trial_no = item.trial.number if item.trial is not None else None
        if error:
            result = CandidateResult(item.key, dict(item.values), [s.to_dict() for s in item.steps], status="failed",
                                     chain=chain, steps_run=steps_run, trial=trial_no, error=error)
        else:
            result = self._from_variants(item.values, chain, chain[-1] if chain else self.config.parent, trial_no,
                                         steps_run)
        self.results.pop(result.key, None)
        self.results[result.key] = result
        self._write_journal()
        if item.trial is not None:
            self._study.tell(item.trial, result)
            item.trial = None
        return result

    def _adopt(self, parent_id: str, steps: list[dict]) -> list[str]:
        """Copy a worker's files into the project and record its variants (or reuse equal ones made meanwhile)."""
        from .runner import _stage

        ids, current = [], parent_id
        for out in steps:
            record = Variant.from_dict(out["variant"])
            existing = self._child(current, record.step)
            if existing is not None:
                current = existing.id
                ids.append(current)
                continue
            new_id = self.project.new_variant_id()
            renamed = {}
            for suffix, src in out["files"].items():
                _stage(Path(src), self.project.artifact_path(new_id + suffix))
                renamed[Path(src).name] = new_id + suffix
            accuracy = tuple(dataclasses.replace(a, fingerprint=self.fp) for a in record.accuracy)
            variant = record.with_changes(id=new_id, parent=current, accuracy=accuracy,
                                          artifact=renamed.get(record.artifact, record.artifact),
                                          deploy=renamed.get(record.deploy, record.deploy))
            self.project.add_variant(variant, f"Search {self.config.name}: {record.step.method}")
            current = new_id
            ids.append(current)
        self.project.autosave()
        return ids

    # ---- workers -------------------------------------------------------------------------------------------------
    def _workspace(self) -> Path:
        if self._work is None:
            self._work = Path(tempfile.mkdtemp(prefix="workbench-search-"))
        return self._work

    def _pool(self) -> cf.ProcessPoolExecutor:
        if self._executor is None:
            ctx = multiprocessing.get_context("spawn")
            self._event = ctx.Event()
            self._executor = cf.ProcessPoolExecutor(self.config.workers, mp_context=ctx, initializer=init_worker,
                                                    initargs=(self._event,))
        return self._executor

    def _job(self, start_id: str, steps: list[Step], work_dir: Path) -> Job:
        p = self.project
        base, data = p.base_model, p.dataset
        if not base.is_demo:
            base = base.model_copy(update={"path": str(base.resolve(p.folder).resolve())})
        if data.path:
            data = data.model_copy(update={"path": str(data.resolve(p.folder).resolve())})
        job = Job(base=base.model_dump(mode="json"), dataset=data.model_dump(mode="json"), seed=p.seed,
                  steps=[s.to_dict() for s in steps], work_dir=str(work_dir), latency_runs=self.config.latency_runs)
        if start_id != ROOT_ID:
            v = p.variant(start_id)
            job.start = v.to_dict()
            for rel in {v.artifact, v.deploy} - {None}:
                job.start_files[_suffix(rel)] = str(p.artifact_path(rel))
                module = p.artifact_path(rel).with_suffix(".module.pt")
                if rel.endswith(".pt2") and module.is_file():
                    job.start_files[".module.pt"] = str(module)
        return job

    def _stop(self) -> None:
        """Stop workers (when something is still running) and remove the scratch folders."""
        running = any(item.future is not None and not item.future.done() for item in self._queue)
        for item in self._queue:
            if item.future is not None:
                item.future.cancel()
        self._queue.clear()
        if self._executor is not None:
            self._event.set()  # running workers stop at their next check
            # Idle workers exit on their own (torch's exit takes a second or two); running ones are waited for.
            self._executor.shutdown(wait=running, cancel_futures=True)
            self._executor = None
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None
        if self._study is not None:
            self._study.close()  # trials asked and not told are asked again next time
            self._study = None

    # ---- strategies ----------------------------------------------------------------------------------------------
    def _grid(self) -> Generator[SearchProgress, None, None]:
        grid = self.config.space.grid()
        self.total = len(grid)
        todo = [(v, None) for v in grid if candidate_key(v) not in self.results]
        self.done = self.total - len(todo)
        yield SearchProgress(self.done / self.total, f"grid: {len(todo)} of {self.total} candidates to go",
                             done=self.done, total=self.total)
        yield from self._run_batch(todo, reorder=True)

    def _optuna(self) -> Generator[SearchProgress, None, None]:
        from .search_optuna import OptunaStudy

        c = self.config
        self._study = OptunaStudy(search_folder(self.project) / f"{c.name}.db", c, self.project.seed)
        self.total = c.trials
        self.done = min(self._study.finished(), c.trials)
        yield SearchProgress(self.done / c.trials, f"optuna: {c.trials - self.done} of {c.trials} trials to go",
                             done=self.done, total=c.trials)
        while self._study.finished() < c.trials:
            self.token.check()
            batch = [self._study.ask() for _ in range(min(c.workers, c.trials - self._study.finished()))]
            yield from self._run_batch(batch, reorder=False)


def _suffix(rel: str) -> str:
    return next(s for s in SUFFIXES if rel.endswith(s))


def _summary(r: CandidateResult) -> str:
    if r.status != "done":
        return f"failed: {r.error}"
    drop = f"drop {r.drop:+.2f} pt" if r.drop is not None else "no accuracy"
    how = "reused" if r.steps_run == 0 else f"{r.steps_run} step{'s' if r.steps_run != 1 else ''} run"
    return f"{r.variant_id}, {drop}, {'feasible' if r.feasible else 'over the limit'} ({how})"


def _metrics(r: CandidateResult) -> dict[str, float]:
    out = {"size_bytes": r.size_bytes, "macs": r.macs, "params": r.params, "latency_p50": r.latency_p50,
           "top1": r.top1, "drop": r.drop, "feasible": float(r.feasible)}
    return {k: float(v) for k, v in out.items() if v is not None}
