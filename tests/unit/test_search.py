"""Search over compression settings on the demo: grid and optuna, worker processes, reuse, stop and resume.

One small space throughout: pruning ratio {0, 0.1} x {fp32, int8 static with 64 calibration samples}. Pruning 10 %
costs the demo about half a point of top-1 and int8 about none, so a 0.3-point limit splits the candidates.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from workbench import cli
from workbench.core.datasets import DatasetConfig
from workbench.core.errors import WorkbenchError
from workbench.core.methods import run_to_end
from workbench.core.modelspec import ModelSpec
from workbench.core.progress import CancelToken, Cancelled
from workbench.core.project import Project
from workbench.core.runner import run_step
from workbench.core.search import SearchConfig, load_results, search, search_folder
from workbench.core.search_space import (ChoiceDimension, ParamDimension, SearchSpace, load_space, parse_space,
                                         pruning_x_bits, save_space)
from workbench.core.variants import Step

MAX_DROP = 0.3
INT8 = {"calibration_samples": 64}


def tiny_space() -> SearchSpace:
    return pruning_x_bits(ratios=[0.0, 0.1], bits=["fp32", "int8"], int8=INT8)


def new_project(folder: Path) -> Project:
    project = Project.create(folder)
    project.set_base_model(ModelSpec.demo())
    project.set_dataset(DatasetConfig(kind="demo"))
    return project


def drive(gen, on_candidate=None):
    """Run a search generator, collecting the finished candidates (on_candidate sees each one)."""
    seen = []

    def progress(p):
        if p.candidate is not None:
            seen.append(p.candidate)
            if on_candidate:
                on_candidate(p.candidate)

    return run_to_end(gen, progress), seen


def figures(result) -> dict:
    return {c.key: (c.status, c.chain, c.size_bytes, c.params, c.macs, c.top1) for c in result.candidates}


@pytest.fixture(scope="module")
def grid2(tmp_path_factory, one_thread):
    """The tiny grid searched once with two worker processes."""
    project = new_project(tmp_path_factory.mktemp("search") / "p2")
    config = SearchConfig(name="tiny", space=tiny_space(), workers=2, max_drop=MAX_DROP)
    result, seen = drive(search(project, config))
    return SimpleNamespace(project=project, config=config, result=result, seen=seen)


# ---- the space --------------------------------------------------------------------------------------------------
def test_ready_space_enumerates_ratio_times_bits_and_round_trips_through_yaml(tmp_path):
    space = pruning_x_bits()
    assert space.size() == 8 * 4 == len(space.grid())
    assert [d.name for d in space.dimensions] == ["ratio", "bits"]
    assert space.dimension("ratio").grid() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert space.steps({"ratio": 0.0, "bits": "fp32"}) == []  # ratio 0 and fp32: the parent itself
    assert space.steps({"ratio": 0.3, "bits": "int8"}) == [Step("prune.channels", {"ratio": 0.3}),
                                                          Step("quantize.int8_static", {})]
    space.check()
    save_space(space, tmp_path / "space.yaml")
    assert load_space(tmp_path / "space.yaml") == space
    assert load_space("pruning_x_bits") == space


def test_bad_spaces_are_named():
    with pytest.raises(WorkbenchError, match="either values or a range"):
        parse_space({"dimensions": [{"kind": "param", "name": "r", "method": "prune.channels", "param": "ratio",
                                     "values": [0.1], "low": 0, "high": 1, "step": 0.5}]})
    with pytest.raises(WorkbenchError, match="dimension names must differ"):
        parse_space({"dimensions": [{"kind": "choice", "name": "a", "options": {"x": []}}] * 2})
    with pytest.raises(WorkbenchError, match="schema_version"):
        parse_space({"schema_version": 7, "dimensions": []})
    with pytest.raises(WorkbenchError, match="ratio' = 1.5"):
        SearchSpace(dimensions=[ParamDimension(name="ratio", method="prune.channels", param="ratio",
                                               values=[0.2, 1.5])]).check()
    with pytest.raises(WorkbenchError, match="unknown method"):
        SearchSpace(dimensions=[ChoiceDimension(name="q", options={"x": [{"method": "no.such"}]})]).check()
    with pytest.raises(WorkbenchError, match="unknown bit widths w3"):
        pruning_x_bits(bits=["w3"])


# ---- grid, workers, reuse ---------------------------------------------------------------------------------------
def test_grid_finds_the_smallest_feasible_candidate_and_it_matches_an_independent_run(grid2, tmp_path):
    result, project = grid2.result, grid2.project
    assert len(result.candidates) == 4 and all(c.status == "done" for c in result.candidates)
    assert [c.key for c in grid2.seen] == [c.key for c in result.candidates]  # streamed in grid order
    for c in result.candidates:
        assert c.feasible == (c.drop <= MAX_DROP)
        assert c.drop == pytest.approx(100 * (result.parent.top1 - c.top1))
    feasible = [c for c in result.candidates if c.feasible]
    infeasible = [c for c in result.candidates if not c.feasible]
    assert feasible and infeasible, "the limit should split this space"
    best = result.best
    assert best.size_bytes == min(c.size_bytes for c in feasible) and best.pareto
    assert best.steps, "a compressed candidate should beat the uncompressed parent"
    # every step ran once: the two-step candidate waited for the pruned variant instead of pruning again
    assert result.steps_run == 3
    assert [c.steps_run for c in result.candidates] == [0, 1, 1, 1]
    # the winner's chain, applied by hand in a fresh project, gives the same file size and accuracy
    fresh = new_project(tmp_path / "independent")
    parent = "base"
    for step in best.steps:
        v = run_to_end(run_step(fresh, parent, Step.from_dict(step)))
        parent = v.id
    assert v.size_bytes.value == best.size_bytes and v.accuracy_on().top1 == best.top1
    # recorded as done variants, one per step, saved with their files
    reopened = Project.open(project.folder)
    assert reopened.recovery.clean
    for c in result.candidates:
        for vid, step in zip(c.chain, c.steps):
            v = reopened.variant(vid)
            assert v.status == "done" and v.step.method == step["method"] and v.accuracy_on() is not None
            assert reopened.artifact_path(v.deploy).is_file()


def test_stop_then_resume_redoes_nothing_and_one_worker_matches_two(grid2, tmp_path):
    project = new_project(tmp_path / "p1")
    config = SearchConfig(name="tiny", space=tiny_space(), workers=1, max_drop=MAX_DROP)
    token = CancelToken()

    def stop_after_first_run(c):
        if c.steps_run:
            token.cancel()

    seen = []
    with pytest.raises(Cancelled):
        drive(search(project, config, token), lambda c: (seen.append(c), stop_after_first_run(c)))
    assert sum(c.steps_run for c in seen) == 1
    assert all(v.status == "done" for v in project.variants.values())
    journal = json.loads((search_folder(project) / "tiny.json").read_text())
    assert [c["key"] for c in journal["candidates"]] == [c.key for c in seen]
    assert Project.open(project.folder).recovery.clean  # nothing half-written

    result, resumed = drive(search(project, config))
    assert result.steps_run == 2 == sum(c.steps_run for c in resumed)  # the 3 steps minus the one already run
    assert {c.key for c in resumed}.isdisjoint(c.key for c in seen if c.steps_run)
    assert figures(result) == figures(grid2.result)  # same candidates, variant ids, sizes and accuracies
    assert result.best.key == grid2.result.best.key
    assert load_results(project, "tiny").best.key == result.best.key


def test_a_failing_candidate_is_journalled_and_the_search_goes_on(grid2):
    # an int8 ONNX file has no float layers left to fake-quantize: it fails, in the worker, with a message
    space = SearchSpace(name="fails", dimensions=[
        ChoiceDimension(name="first", options={"int8": [{"method": "quantize.int8_static", "params": INT8}]}),
        ChoiceDimension(name="then", options={"none": [], "w4": [{"method": "quantize.bits",
                                                                   "params": {"weight_bits": 4}}]})])
    before = dict(grid2.project.variants)
    config = SearchConfig(name="fails", space=space, workers=2, max_drop=MAX_DROP)
    result, seen = drive(search(grid2.project, config))
    ok, failed = result.candidates
    assert ok.status == "done" and ok.steps_run == 0  # int8 on the base model exists: reused
    assert failed.status == "failed" and "already quantized" in failed.error and failed.chain == [ok.variant_id]
    assert result.best.key == ok.key and dict(grid2.project.variants) == before
    journal = json.loads((search_folder(grid2.project) / "fails.json").read_text())
    assert [c["status"] for c in journal["candidates"]] == ["done", "failed"]
    again, rerun = drive(search(grid2.project, config))
    assert rerun == [] and again.candidates[1].status == "failed"  # a resume does not retry it


def test_a_changed_search_under_the_same_name_is_refused(grid2):
    other = SearchConfig(name="tiny", space=pruning_x_bits(ratios=[0.0, 0.2], bits=["fp32"]), workers=2)
    with pytest.raises(WorkbenchError, match="another space"):
        run_to_end(search(grid2.project, other))


# ---- optuna -----------------------------------------------------------------------------------------------------
def _trials(project, name):
    import optuna

    storage = f"sqlite:///{search_folder(project) / f'{name}.db'}"
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def test_optuna_runs_its_trials_and_resumes_from_sqlite(grid2):
    project = grid2.project  # every candidate exists already: the trials reuse them
    config = SearchConfig(name="opt", space=tiny_space(), strategy="optuna", trials=3, max_drop=MAX_DROP)
    first, seen = drive(search(project, config))
    trials = _trials(project, "opt")
    assert len(seen) == 3 and [t.state.name for t in trials] == ["COMPLETE"] * 3
    by_key = {c.key: c for c in grid2.result.candidates}
    for t, c in zip(trials, seen):
        assert json.loads(c.key) == t.params
        assert t.values == [by_key[c.key].size_bytes, pytest.approx(by_key[c.key].drop)]
        assert t.constraints == {"max_drop": pytest.approx(by_key[c.key].drop - MAX_DROP)}
    assert first.steps_run == 0

    # a run killed with a trial asked and not told leaves it RUNNING in the storage: a resume asks for it again
    import optuna

    study = optuna.load_study(study_name="opt", storage=f"sqlite:///{search_folder(project) / 'opt.db'}")
    killed = study.ask()
    killed.suggest_categorical("ratio", [0.0, 0.1])
    killed.suggest_categorical("bits", ["fp32", "int8"])
    token = CancelToken()  # and this run is stopped after its first candidate
    with pytest.raises(Cancelled):
        drive(search(project, config.model_copy(update={"trials": 6}), token), lambda c: token.cancel())
    trials = _trials(project, "opt")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 + ["FAIL", "COMPLETE"]
    assert trials[3].user_attrs["requeued"] and trials[4].params == trials[3].params
    _, more = drive(search(project, config.model_copy(update={"trials": 6})))
    assert len(more) == 2
    trials = _trials(project, "opt")
    assert [t.params for t in trials[:3]] == [json.loads(c.key) for c in seen]
    assert [t.state.name for t in trials].count("COMPLETE") == 6 and len(trials) == 7


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_optuna_is_seeded(grid2, sampler):
    runs = []
    for name in (f"{sampler}-a", f"{sampler}-b"):
        config = SearchConfig(name=name, space=tiny_space(), strategy="optuna", sampler=sampler, trials=4,
                              max_drop=MAX_DROP)
        runs.append([c.key for c in drive(search(grid2.project, config))[1]])
    assert runs[0] == runs[1]


# ---- CLI --------------------------------------------------------------------------------------------------------
def _space_file(tmp_path, ratios, bits) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(pruning_x_bits(ratios=ratios, bits=bits, int8=INT8).to_doc()))
    return path


def test_cli_prints_the_winner_and_exits_3_when_nothing_meets_the_limit(grid2, tmp_path, capsys):
    folder = str(grid2.project.folder)
    space = _space_file(tmp_path, [0.0, 0.1], ["fp32", "int8"])
    assert cli.main(["search", "--project", folder, "--space", str(space), "--max-drop", str(MAX_DROP),
                     "--name", "cli"]) == 0
    out = capsys.readouterr().out
    assert "[4/4]" in out and f"winner: {grid2.result.best.label} -> variant {grid2.result.best.variant_id}" in out

    pruned = next(c for c in grid2.result.candidates if c.values == {"ratio": 0.1, "bits": "fp32"})
    only_pruned = _space_file(tmp_path, [0.1], ["fp32"])
    code = cli.main(["search", "--project", folder, "--space", str(only_pruned), "--max-drop",
                     str(pruned.drop / 2), "--name", "cli-infeasible", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 3 and doc["best"] is None
    assert [c["variant_id"] for c in doc["candidates"]] == [pruned.variant_id] and doc["steps_run"] == 0


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    assert cli.main(["search", "--demo", "--project", str(tmp_path / "p"), "--space", "nope.yaml"]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert cli.main(["search", "--demo", "--project", str(tmp_path / "p"), "--max-drop", "-1"]) == 2
    assert "--max-drop" in capsys.readouterr().err
    assert cli.main(["search", "--project", str(tmp_path / "empty")]) == 2
    assert "no model given" in capsys.readouterr().err
