"""The experiment runner, cached evaluation, per-layer comparison and recipes, on the bundled demo."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from workbench import cli
from workbench.core.datasets import DatasetConfig
from workbench.core.errors import WorkbenchError
from workbench.core.evaluation import AccuracyCache, evaluate
from workbench.core.methods import run_to_end
from workbench.core.modelspec import ModelSpec, file_sha256
from workbench.core.progress import CancelToken, Cancelled
from workbench.core.project import Project
from workbench.core.recipes import (Recipe, dump_recipe, json_schema, load_recipe, parse_recipe, recipe_from_lineage,
                                    run_recipe)
from workbench.core.runner import compare_variants, evaluate_variant, run_step, variant_artifact
from workbench.core.variants import Step, compare_layers

DOCS = Path(__file__).parents[2] / "docs"
FAST_STEPS = [{"method": "prune.channels", "params": {"ratio": 0.2}},
              {"method": "quantize.int8_static", "params": {"calibration_samples": 64}}]


@pytest.fixture(scope="module")
def replay(tmp_path_factory, one_thread):
    """The fast recipe replayed once into a project folder (prune 20 % then static int8)."""
    out = tmp_path_factory.mktemp("replay") / "project"
    recipe = parse_recipe({"schema_version": 1, "steps": FAST_STEPS, "evaluate": {"device": "none"}})
    progress = []
    result = run_to_end(run_recipe(recipe, Path("."), out), progress.append)
    return SimpleNamespace(recipe=recipe, result=result, progress=progress, out=out)


def test_replay_builds_a_measured_lineage(replay):
    base, pruned, int8 = replay.result.variants
    assert [v.status for v in (base, pruned, int8)] == ["done"] * 3
    assert (pruned.parent, int8.parent) == ("base", pruned.id)
    assert pruned.params.value < base.params.value and pruned.macs.value < base.macs.value
    assert int8.size_bytes.value < pruned.size_bytes.value
    assert base.accuracy_on().top1 == pytest.approx(0.989) and base.accuracy_on().samples == 1000
    assert 0.2 < int8.accuracy_on().top1 < 0.99
    assert all(v.params.provenance == "measured" for v in replay.result.variants)
    fractions = [p.fraction for p in replay.progress if p.fraction is not None]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    files = sorted(p.name for p in (replay.out / "artifacts").iterdir())
    assert files == ["base.onnx", "v1.module.pt", "v1.onnx", "v1.pt2", "v2.onnx"]
    assert Project.open(replay.out).recovery.clean


def test_a_second_replay_gives_identical_figures(replay, tmp_path):
    again = run_to_end(run_recipe(replay.recipe, Path("."), tmp_path / "again"))
    for a, b in zip(replay.result.variants, again.variants):
        assert (a.accuracy_on().top1, a.accuracy_on().loss) == (b.accuracy_on().top1, b.accuracy_on().loss)
        assert (a.params, a.macs) == (b.params, b.macs)
    # The int8 file is byte-identical, so its accuracy could also come from a shared cache.
    assert file_sha256(replay.out / "artifacts/v2.onnx") == file_sha256(tmp_path / "again/artifacts/v2.onnx")


def test_per_layer_comparison(replay):
    project = Project.open(replay.out)
    graphs = [variant_artifact(project, project.variants[i]).graph() for i in ("base", "v1", "v2")]
    pruned = compare_layers(graphs[0], graphs[1])
    assert not pruned.removed and not pruned.added
    assert pruned.changed and all(r.params_delta <= 0 and r.macs_delta <= 0 for r in pruned.changed)
    assert sum(r.params_delta for r in pruned.rows) == graphs[1].params - graphs[0].params
    quantized = compare_variants(project, "v1", "v2")  # PyTorch layers vs the int8 ONNX graph, matched by scope
    assert any(r.name.endswith("/Conv") for r in quantized.rows)
    assert any("DequantizeLinear" in name for name in quantized.added)


def test_evaluation_is_cached_by_file_and_dataset(replay, tmp_path):
    project = Project.open(replay.out)
    deployed = variant_artifact(project, project.variants["v2"], deploy=True)
    from workbench.core.data import demo_data

    val = demo_data().val
    cache = AccuracyCache(tmp_path / "cache.json")
    first = []
    acc = run_to_end(evaluate(deployed, val, "fp", cache, batch=300), first.append)
    assert [p.message for p in first][-1] == "evaluating 1000/1000" and len(first) == 5
    again = []
    assert run_to_end(evaluate(deployed, val, "fp", AccuracyCache(tmp_path / "cache.json"), batch=300),
                      again.append) == acc
    assert [p.message for p in again] == ["accuracy from the cache"]
    other = []
    run_to_end(evaluate(deployed, val, "other-data", cache), other.append)
    assert len(other) > 1  # another dataset fingerprint runs the model
    (tmp_path / "cache.json").write_text("{broken")
    assert run_to_end(evaluate(deployed, val, "fp", AccuracyCache(tmp_path / "cache.json"), batch=300)) == acc
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_to_end(evaluate(deployed, val, token=token))


@pytest.fixture
def fresh(tmp_path, one_thread):
    project = Project.create(tmp_path / "p")
    project.set_base_model(ModelSpec.demo())
    project.set_dataset(DatasetConfig(kind="demo"))
    return project


def test_cancel_and_failure_are_recorded_and_undoable(fresh):
    token = CancelToken()
    gen = run_step(fresh, "base", Step("prune.channels", {"ratio": 0.2}), token=token)
    next(gen)
    token.cancel()
    with pytest.raises(Cancelled):
        run_to_end(gen)
    assert fresh.variants["v1"].status == "cancelled" and fresh.variants["v1"].artifact is None
    assert not any(fresh.artifacts_dir.iterdir())
    fresh.undo()
    assert "v1" not in fresh.variants
    with pytest.raises(WorkbenchError, match="ratio"):
        run_to_end(run_step(fresh, "base", Step("prune.channels", {"ratio": 5})))
    failed = fresh.variants["v2"]
    assert failed.status == "failed" and "ratio" in failed.error and fresh.undo_label.endswith("(failed)")
    with pytest.raises(WorkbenchError, match="is failed, so there is no model"):
        run_to_end(run_step(fresh, "v2", Step("finetune")))
    assert list(fresh.variants) == ["base", "v2"]  # refused before a variant was made


def test_planned_variant_shows_estimates_then_runs(fresh, replay):
    graph = variant_artifact(fresh, fresh.variants["base"]).graph()
    planned = fresh.plan_variant("base", Step("prune.channels", {"ratio": 0.2}), graph)
    assert planned.status == "planned" and planned.params.provenance == "estimated"
    done = run_to_end(run_step(fresh, "base", variant_id=planned.id))
    assert done.id == planned.id and done.params.provenance == "measured"
    assert done.accuracy_on().top1 == replay.result.variants[1].accuracy_on().top1
    with pytest.raises(WorkbenchError, match="is done"):
        run_to_end(run_step(fresh, "base", variant_id=planned.id))  # measured variants are never re-run
    fresh.undo()
    assert fresh.variants[planned.id] == planned  # undoing the run restores the plan


def test_measure_with_latency(fresh):
    fake = {"p50": 1.0, "p90": 2.0, "p99": 3.0, "runs": 5, "threads": 1, "device": "board", "device_name": "arm"}
    seen = []
    base = run_to_end(evaluate_variant(fresh, "base", lambda path: seen.append(path) or fake))
    assert base.status == "done" and base.latency_by_device()["board"].p99 == 3.0
    assert seen == [fresh.artifact_path("base.onnx")]
    base = run_to_end(evaluate_variant(fresh, "base", lambda path: fake | {"p50": 0.5}))
    assert [m.p50 for m in base.latency] == [1.0, 0.5] and len(base.accuracy) == 1  # appended; accuracy known


def test_dataset_that_does_not_fit_fails_clearly(fresh, tmp_path):
    np.savez(tmp_path / "rgb.npz", x=np.zeros((20, 3, 28, 28), np.float32), y=np.arange(20) % 10)
    fresh.set_dataset(DatasetConfig(kind="npz", path=str(tmp_path / "rgb.npz")))
    with pytest.raises(WorkbenchError, match="3 channel.*takes 1.*grayscale"):
        run_to_end(evaluate_variant(fresh, "base"))


# ---- recipes -------------------------------------------------------------------------------------------------
def test_recipe_from_lineage_round_trips(replay, tmp_path):
    recipe = recipe_from_lineage(replay.result.project, "v2")
    assert [s.model_dump() for s in recipe.steps] == [{"method": s["method"], "params": s["params"],
                                                        "overrides": {}} for s in FAST_STEPS]
    (tmp_path / "r.yaml").write_text(dump_recipe(recipe))
    assert load_recipe(tmp_path / "r.yaml") == recipe
    assert dump_recipe(recipe).startswith("schema_version: 1\n")


def test_model_sha256_and_relative_paths(replay, tmp_path):
    import shutil

    from workbench.core.data import demo_data

    shutil.copy(replay.out / "artifacts/base.onnx", tmp_path / "model.onnx")
    val = demo_data().val.take(200)
    np.savez(tmp_path / "data.npz", x=val.x, y=val.y)
    doc = {"schema_version": 1, "model": {"path": "model.onnx", "input_shape": [1, 1, 28, 28],
                                          "sha256": file_sha256(tmp_path / "model.onnx")},
           "dataset": {"kind": "npz", "path": "data.npz", "splits": {"val_fraction": 0.5}},
           "evaluate": {"device": "none"}, "goals": {"min_top1": 90}}
    result = run_to_end(run_recipe(parse_recipe(doc), tmp_path, tmp_path / "out"))
    assert result.goals_met and 95 <= result.variants[0].accuracy_on().samples <= 105  # half, stratified
    saved = recipe_from_lineage(result.project, "base", recipe_dir=tmp_path / "recipes")
    assert (saved.model.path, saved.dataset.path) == ("../model.onnx", "../data.npz")
    assert saved.model.sha256 == doc["model"]["sha256"] and saved.dataset.splits.val_fraction == 0.5
    doc["model"]["sha256"] = "0" * 64
    with pytest.raises(WorkbenchError, match="sha256"):
        run_to_end(run_recipe(parse_recipe(doc), tmp_path, tmp_path / "out2"))


def test_a_recipe_without_data_measures_what_needs_none(replay, tmp_path, capsys):
    import shutil

    shutil.copy(replay.out / "artifacts/base.onnx", tmp_path / "model.onnx")
    doc = {"schema_version": 1, "model": {"path": "model.onnx", "input_shape": [1, 1, 28, 28]}, "dataset": None,
           "steps": [{"method": "prune.channels", "params": {"ratio": 0.5}}], "evaluate": {"device": "none"},
           "goals": {"max_accuracy_drop": 1.0, "max_macs": 10**9}}
    result = run_to_end(run_recipe(parse_recipe(doc), tmp_path, tmp_path / "out"))
    base, pruned = result.variants
    assert pruned.status == "done" and not pruned.accuracy and pruned.macs.value < base.macs.value
    assert not result.goals_met  # the accuracy goal cannot be checked without data: not met, and said so
    details = {d["goal"]: d for d in result.details}
    assert details["max_accuracy_drop"]["actual"] is None and details["max_macs"]["met"]
    assert recipe_from_lineage(result.project, pruned.id).dataset is None  # saved again: still no data
    (tmp_path / "r.yaml").write_text(dump_recipe(parse_recipe(doc)))
    assert cli.main(["run", str(tmp_path / "r.yaml")]) == cli.EXIT_GOAL_MISSED
    out = capsys.readouterr().out
    assert "top-1      — (no data)" in out and "max_accuracy_drop 1.0: MISSED (not measured)" in out
    doc["steps"].append({"method": "finetune", "params": {"epochs": 1}})
    with pytest.raises(WorkbenchError, match="no dataset"):  # a step that needs data says so
        run_to_end(run_recipe(parse_recipe(doc), tmp_path, tmp_path / "out2"))


def test_bad_recipes_are_named(tmp_path):
    (tmp_path / "r.yaml").write_text("schema_version: 1\nsteps:\n  - method: prune.channels\n    params: {ratio: 7}\n")
    with pytest.raises(WorkbenchError, match="ratio"):
        run_to_end(run_recipe(load_recipe(tmp_path / "r.yaml"), tmp_path, tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # checked before anything ran
    with pytest.raises(WorkbenchError, match="schema_version"):
        parse_recipe({"steps": []})
    with pytest.raises(WorkbenchError, match="goals.max_speed"):
        parse_recipe({"schema_version": 1, "goals": {"max_speed": 1}})
    (tmp_path / "bad.yaml").write_text("steps: [\n")
    with pytest.raises(WorkbenchError, match="not valid YAML"):
        load_recipe(tmp_path / "bad.yaml")


def test_published_schema_is_up_to_date_and_the_documented_example_validates():
    published = json.loads((DOCS / "recipe.schema.json").read_text())
    assert published == json_schema(), "regenerate with: python -c 'from workbench.core.recipes import " \
                                       "write_schema; write_schema(\"docs/recipe.schema.json\")'"
    import yaml

    example = re.search(r"```yaml\n(.*?)```", (DOCS / "recipes.md").read_text(), re.S).group(1)
    recipe = parse_recipe(yaml.safe_load(example))
    assert isinstance(recipe, Recipe) and recipe.steps and recipe.goals.max_accuracy_drop is not None


def test_cli_run_json_and_goal_exit_status(tmp_path, capsys, one_thread):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("schema_version: 1\nmodel: demo\ndataset: demo\nsteps:\n  - method: quantize.int8_static\n"
                      "    params: {calibration_samples: 64}\nevaluate: {device: local, runs: 5}\n"
                      "goals: {max_accuracy_drop: 2.0}\n")
    assert cli.main(["run", str(recipe), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [v["id"] for v in doc["variants"]] == ["base", "v1"] and doc["goals"]["met"] is True
    first = doc["variants"][1]
    assert first["method"] == "quantize.int8_static" and first["latency_ms"]["runs"] == 5
    assert set(first) == {"id", "parent", "method", "params", "params_count", "macs", "size_bytes", "accuracy",
                          "latency_ms"}
    recipe.write_text(recipe.read_text().replace("max_accuracy_drop: 2.0", "min_top1: 99.9"))
    assert cli.main(["run", str(recipe), "--out", str(tmp_path / "kept")]) == cli.EXIT_GOAL_MISSED
    out = capsys.readouterr().out
    assert "MISSED" in out and (tmp_path / "kept" / "project.json").is_file()
    recipe.write_text("schema_version: 1\nmodel: {path: missing.onnx}\n")
    assert cli.main(["run", str(recipe)]) == cli.EXIT_USER_ERROR
    assert "missing.onnx" in capsys.readouterr().err
