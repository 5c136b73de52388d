"""What ablate says: problems listed once with one closing fix, the cost of a local model folder,
and runs a data change superseded (real specs, a real SQLite store)."""

import io

import pytest

from ablate import results
from ablate.errors import AblateError
from tests.conftest import FIXTURES, REPO

SHAPED = FIXTURES / "superni_shaped"


def _spec(folder, **data):
    import yaml

    spec = {"name": "msgs", "data": {"source": str(SHAPED), "instances_per_task": 4, **data}, "model": "t5-nano",
            "train": {"steps": 4, "batch_size": 4, "learning_rate": 1.0e-3, "max_source_length": 64,
                      "max_target_length": 8, "encoding": "def"},
            "seeds": [0, 1], "axes": {"instances_per_task": [2, 4]}}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    return path


def test_a_split_error_is_listed_once_not_once_per_cell(tmp_path):
    from ablate.prepare import prepare_sweep

    with pytest.raises(AblateError) as caught:
        prepare_sweep(str(_spec(tmp_path, split="nosuch")), [], output_dir=str(tmp_path / "out"))
    text = str(caught.value)
    assert text.count("split 'nosuch' does not exist") == 1, text
    assert "1 problem(s)" in text and "seed=" not in text, "every cell has it: no cell is named"


def test_a_problem_of_some_cells_names_them_once(tmp_path):
    from ablate.prepare import prepare_sweep

    with pytest.raises(AblateError) as caught:
        prepare_sweep(str(_spec(tmp_path)), ["axes.instances_per_task=[4,99]"], output_dir=str(tmp_path / "out"))
    text = str(caught.value)
    assert text.count("asks for 99 instances") == 1, text
    assert "instances_per_task=99 seed=0, instances_per_task=99 seed=1: " in text


def test_a_problem_list_ends_with_its_own_fix_line():
    error = AblateError("2 problem(s) with the planned cells:\n- a. To fix: do x.\n- b. To fix: do y.",
                        file="s.yaml", fix="correct the spec as each line says.")
    lines = str(error).splitlines()
    assert lines[-2] == "- b. To fix: do y." and lines[-1] == "Fix: correct the spec as each line says."
    assert str(AblateError("one thing.", fix="do x.")) == "one thing. Fix: do x.", "one problem stays one line"


def test_the_cost_of_a_local_model_folder_follows_its_parameter_count(tmp_path):
    """A folder saved from a small model is estimated near the preset of its size, not at the
    5 s a step of an unknown model (issue 24: ~83 s estimated against 5-54 s measured)."""
    from ablate.cost import UNKNOWN_SECONDS_PER_STEP, seconds_per_step
    from ablate.model import PRESETS, build_model
    from ablate.estimate import estimate_seconds
    from ablate.prepare import prepare_sweep

    for preset in ("t5-nano", "t5-mini", "llama-tiny"):
        folder = tmp_path / preset
        build_model(preset, 300, seed=0).config.save_pretrained(folder)
        estimated = seconds_per_step(str(folder))
        assert PRESETS[preset].cpu_seconds_per_step / 1.3 < estimated < PRESETS[preset].cpu_seconds_per_step * 1.3
    assert seconds_per_step(str(tmp_path / "no-such-folder")) == UNKNOWN_SECONDS_PER_STEP
    spec = _spec(tmp_path)
    local = prepare_sweep(str(spec), [f"model={tmp_path / 't5-nano'}"], output_dir=str(tmp_path / "out"))
    preset = prepare_sweep(str(spec), [], output_dir=str(tmp_path / "out"))
    for mine, theirs in zip(local.cells, preset.cells):
        assert estimate_seconds(mine) == pytest.approx(estimate_seconds(theirs), rel=0.3)


def test_runs_of_changed_data_are_marked_superseded_and_the_current_ones_kept(tmp_path):
    """After the data change, the plan's cells have new ids under the same names: the older runs of
    those names get the tag and a name saying so; runs of cells still planned are left alone."""
    import shutil

    from ablate.superseded import SUFFIX, mark_superseded
    from ablate.prepare import prepare_sweep
    from ablate.track import Store

    data = tmp_path / "data"
    shutil.copytree(SHAPED, data)
    spec = _spec(tmp_path)
    overrides = [f"data.source={data}"]
    before = prepare_sweep(str(spec), overrides, output_dir=str(tmp_path / "out"))
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    experiment_id = store.ensure_experiment("msgs")

    def run_of(cell):
        run = store.client.create_run(experiment_id, run_name=cell.name,
                                      tags={results.ROLE: results.ROLE_CELL, results.CELL_ID: cell.id})
        store.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    old = [run_of(c) for c in before.cells]
    (data / "tasks" / "task1008_headline_summarization.json").unlink()
    (data / "splits" / "default" / "train_tasks.txt").write_text(
        (SHAPED / "splits" / "default" / "train_tasks.txt").read_text().replace("task1008_headline_summarization\n", ""))
    after = prepare_sweep(str(spec), overrides, output_dir=str(tmp_path / "out"))
    assert [c.name for c in after.cells] == [c.name for c in before.cells]
    assert not {c.id for c in after.cells} & {c.id for c in before.cells}, "new data, new ids"
    kept = run_of(after.cells[0])
    out = io.StringIO()
    assert mark_superseded(store, store.cell_runs(experiment_id), after.cells, out) == len(old)
    assert f"Marked {len(old)} run(s)" in out.getvalue()
    for run_id, cell_before, cell_after in zip(old, before.cells, after.cells):
        run = store.client.get_run(run_id)
        assert run.data.tags[results.SUPERSEDED] == cell_after.id
        assert run.info.run_name == cell_before.name + SUFFIX
    current = store.client.get_run(kept)
    assert results.SUPERSEDED not in current.data.tags and current.info.run_name == after.cells[0].name
    assert mark_superseded(store, store.cell_runs(experiment_id), after.cells, io.StringIO()) == 0, "marked once"



def test_the_docs_metric_key_example_is_the_key_ablate_stores():
    """The docs' example of a stored category key (the real-data tutorial) is what
    results.MetricKey writes for that category, named as the official metrics script names categories."""
    from ablate.metrics import category_key

    page = (REPO / "docs" / "tutorials" / "real-superni.md").read_text(encoding="utf-8")
    key = results.MetricKey("def", "rougeL", "category", category_key("Text Generation -> Word Generation")).key()
    assert key == "def/category/text_generation_-:3e:_word_generation/rougeL" and f"`{key}`" in page
    assert "`Text Generation -:3e: Word Generation`" not in page
