"""Grid expansion and stable cell ids: pure, deterministic, testable without Ray."""

import textwrap

import yaml

from ablate.plan import expand_grid
from ablate.spec import SweepSpec
from tests.test_spec import BASE


def spec_of(extra: str = "", **changes) -> SweepSpec:
    raw = yaml.safe_load(BASE + textwrap.dedent(extra))
    raw.update(changes)
    return SweepSpec.model_validate(raw)


def test_grid_is_product_of_axes_times_seeds():
    spec = spec_of("axes:\n  num_train_tasks: [1, 2, 4]\n  model: [t5-tiny, copy_demo]\n", seeds=[0, 1])
    cells = expand_grid(spec, "fp")
    assert len(cells) == 12 and len({c.id for c in cells}) == 12
    assert cells[0].axis_values == {"num_train_tasks": 1, "model": "t5-tiny", "seed": 0}
    assert cells[0].name == "num_train_tasks=1 model=t5-tiny seed=0"
    assert cells[0].settings.data.num_train_tasks == 1 and cells[-1].settings.model == "copy_demo"


def test_cumulative_clusters_expand_to_prefixes():
    spec = spec_of("axes:\n  train_clusters: {cumulative: [program_execution, translation, extraction]}\n")
    cells = expand_grid(spec, "fp")
    assert [c.settings.data.train_clusters for c in cells] == [
        ["program_execution"], ["program_execution", "translation"],
        ["program_execution", "translation", "extraction"]]


def test_test_encodings_fold_into_each_training_cell():
    spec = spec_of("axes:\n  train_encoding: [def, pos2]\n  test_encoding: [def, pos2, def+pos2]\n")
    cells = expand_grid(spec, "fp")
    assert len(cells) == 2
    assert all(c.settings.test_encodings == ["def", "pos2", "def+pos2"] for c in cells)
    assert [c.settings.train.encoding for c in cells] == ["def", "pos2"]


def test_dotted_path_axis():
    cells = expand_grid(spec_of("axes:\n  train.learning_rate: [0.001, 0.0003]\n"), "fp")
    assert [c.settings.train.learning_rate for c in cells] == [0.001, 0.0003]


def test_ids_are_stable_and_shared_across_specs():
    one = expand_grid(spec_of("axes:\n  num_train_tasks: [1, 2]\n"), "fp")
    other = expand_grid(spec_of("axes:\n  num_train_tasks: [2, 8]\n", name="another_sweep",
                                resources={"max_concurrent": 1}, tracking={"experiment": "x"}), "fp")
    assert one[1].id == other[0].id, "same settings, same id, whatever the sweep name or resources"
    assert expand_grid(spec_of("axes:\n  num_train_tasks: [1, 2]\n"), "fp")[0].id == one[0].id


def test_ids_ignore_key_order_and_source_path_but_not_data_or_seed():
    base = yaml.safe_load(BASE)
    reordered = dict(reversed(list(base.items())))
    reordered["train"] = dict(reversed(list(base["train"].items())))
    a = expand_grid(SweepSpec.model_validate(base), "fp")[0]
    b = expand_grid(SweepSpec.model_validate(reordered), "fp")[0]
    assert a.id == b.id
    moved = {**base, "data": {**base["data"], "source": "/elsewhere/superni"}}
    assert expand_grid(SweepSpec.model_validate(moved), "fp")[0].id == a.id, "path replaced by fingerprint"
    assert expand_grid(SweepSpec.model_validate(base), "other-data")[0].id != a.id
    assert expand_grid(SweepSpec.model_validate({**base, "seeds": [1]}), "fp")[0].id != a.id


def test_a_cell_round_trips_through_json():
    from ablate.plan import Cell

    spec = spec_of("axes:\n  train_clusters: {cumulative: [program_execution, translation]}\n"
                   "  test_encoding: [def, pos2]\n", seeds=[0, 3])
    for cell in expand_grid(spec, "fp"):
        again = Cell.from_json(yaml.safe_load(yaml.safe_dump(cell.to_json())))
        assert again == cell and again.settings.test_encodings == ["def", "pos2"]


def test_run_names_are_short_and_full_values_stay_in_the_axis_values():
    spec = spec_of("axes:\n  train_clusters: {cumulative: [program_execution, translation, extraction]}\n"
                   "  train.learning_rate: [1.0e-3]\n")
    cells = expand_grid(spec, "fp")
    assert cells[2].name == "clusters=3 (+extraction) learning_rate=0.001 seed=0"
    assert cells[2].axis_values["train_clusters"] == ["program_execution", "translation", "extraction"]


def test_settings_that_do_not_change_results_do_not_change_the_id():
    base = expand_grid(spec_of(), "fp")[0]
    other = expand_grid(spec_of(train={**yaml.safe_load(BASE)["train"], "log_every": 7, "checkpoint_every": 9,
                                       "save_model": True}), "fp")[0]
    changed = expand_grid(spec_of(train={**yaml.safe_load(BASE)["train"], "gradient_accumulation_steps": 2}), "fp")[0]
    assert other.id == base.id and changed.id != base.id


def test_a_cumulative_clusters_axis_can_start_from_the_untuned_model():
    spec = spec_of("axes:\n  train_clusters: {cumulative: [program_execution, translation], from_none: true}\n")
    cells = expand_grid(spec, "fp")
    assert [c.settings.data.train_clusters for c in cells] == [[], ["program_execution"],
                                                               ["program_execution", "translation"]]
    assert [c.settings.untuned for c in cells] == [True, False, False]
    assert cells[0].name == "clusters=0 (untuned) seed=0"


def test_the_untuned_cell_is_shared_by_every_sweep_that_holds_it():
    from_clusters = expand_grid(spec_of("axes:\n  train_clusters: {cumulative: [program_execution], from_none: true}\n"),
                                "fp")[0]
    from_tasks = expand_grid(spec_of("axes:\n  num_train_tasks: [0, 4]\n"), "fp")[0]
    from_steps = expand_grid(spec_of(train={**yaml.safe_load(BASE)["train"], "steps": 0, "learning_rate": 0.5}),
                             "fp")[0]
    from_instances = expand_grid(spec_of("axes:\n  instances_per_task: [0, 8]\n"), "fp")[0]
    assert all(c.settings.untuned for c in (from_clusters, from_tasks, from_steps, from_instances))
    assert from_clusters.id == from_tasks.id == from_steps.id == from_instances.id
    tuned = expand_grid(spec_of("axes:\n  num_train_tasks: [0, 4]\n"), "fp")[1]
    assert not tuned.settings.untuned and tuned.id != from_tasks.id


def test_clusters_can_be_added_in_a_random_order_per_seed():
    clusters = "[program_execution, translation, extraction, summarization]"
    spec = spec_of(f"axes:\n  train_clusters: {{cumulative: {clusters}, order: random}}\n", seeds=[0, 1, 2])
    cells = expand_grid(spec, "fp")
    by_seed = {}
    for cell in cells:
        by_seed.setdefault(cell.settings.seed, []).append(cell.settings.data.train_clusters)
    for seed, prefixes in by_seed.items():
        assert [len(p) for p in prefixes] == [1, 2, 3, 4]
        assert all(small == large[:len(small)] for small, large in zip(prefixes, prefixes[1:])), "nested per seed"
        assert sorted(prefixes[-1]) == sorted(yaml.safe_load(clusters))
    assert len({tuple(p[-1]) for p in by_seed.values()}) > 1, "seeds draw different orders"
    assert expand_grid(spec, "fp") == cells, "the orders are seeded"
