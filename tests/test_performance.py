"""The parts behind ablate's performance figures (benchmarks/run_all.py measures the figures):
fast grid expansion with unchanged cell ids, per-cell peak memory in reused workers, the sweep's
timing and its cell order, the status prefetch of `ablate plan`, and batched row reads in training."""

import hashlib
import json
import threading
import time

import pytest

from ablate.estimate import estimate_seconds, longest_first
from ablate.plan import CellSettings, expand_grid, identity_tree
from ablate.spec import cluster_order, load_spec
from ablate.status import StatusPrefetch, read_cell_statuses
from ablate.timing import SweepTiming, overlapped
from tests.conftest import REPO

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


def reference_id(settings: CellSettings) -> str:
    """The definition of a cell id, computed the slow, obvious way: the whole settings validated
    and dumped as one document."""
    settings = CellSettings.model_validate(settings.model_dump(mode="json"))
    resolved = identity_tree(settings)
    resolved["data"]["source"] = settings.data_fingerprint
    if settings.untuned:
        resolved.pop("stages", None)
        for key in ("train_clusters", "num_train_tasks", "instances_per_task"):
            resolved["data"].pop(key)
        resolved["train"] = {"untuned": True, "max_source_length": settings.train.max_source_length}
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_shared_sections_give_every_cell_the_id_of_its_whole_settings(path):
    cells = expand_grid(load_spec(str(path), [], REPO), "fp")
    for cell in cells:
        assert cell.id == reference_id(cell.settings), cell.name
        assert cell.settings == CellSettings.model_validate(cell.settings.model_dump(mode="json"))


def test_cell_ids_are_those_earlier_versions_stored():
    """Runs already in a store keep matching their cells: ids computed by the release before the
    sections were shared."""
    smoke = {c.name: c.id for c in expand_grid(load_spec(str(REPO / "sweeps" / "smoke.yaml"), [], REPO), "fp")}
    assert smoke["instances_per_task=8 seed=0"] == "74639d773972"
    assert smoke["instances_per_task=16 seed=1"] == "cde13c6fbd96"
    zero = {c.name: c.id for c in expand_grid(load_spec(str(REPO / "sweeps" / "zero_vs_few_shot.yaml"), [], REPO),
                                              "fp")}
    assert zero["steps=0 seed=0"] == "ef5255b97f4b" and zero["steps=800 seed=0"] == "7e8d215d3120"


def test_random_cluster_orders_and_many_axes_keep_their_ids(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text((REPO / "sweeps" / "smoke.yaml").read_text().split("axes:")[0] + """
axes:
  train_clusters: {cumulative: [program_execution, extraction, summarization], order: random, from_none: true}
  train.learning_rate: [0.001, 0.002]
  train.steps: [0, 10]
  test_encoding: [def, pos2]
""")
    loaded = load_spec(str(spec), [], tmp_path)
    cells = expand_grid(loaded, "fp")
    assert len(cells) == 4 * 2 * 2 * 2
    assert all(c.id == reference_id(c.settings) for c in cells)
    for cell in cells:  # each seed draws its own order, and a cell trains on a prefix of it
        size = len(cell.axis_values["train_clusters"])
        assert cell.settings.data.train_clusters == cluster_order(loaded, cell.settings.seed)[:size]


def test_ten_thousand_cells_share_a_few_validated_sections(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text((REPO / "sweeps" / "smoke.yaml").read_text().replace("seeds: [0, 1]", f"seeds: {list(range(100))}")
                    .replace("instances_per_task: [8, 16]", f"instances_per_task: {list(range(1, 101))}"))
    cells = expand_grid(load_spec(str(spec), [], tmp_path), "fp")
    assert len(cells) == 10_000 and len({c.id for c in cells}) == 10_000
    assert len({id(c.settings.train) for c in cells}) == 1 and len({id(c.settings.data) for c in cells}) == 100


def test_peak_memory_counts_from_the_start_of_each_cell():
    from ablate.cell import peak_memory_mb, reset_peak_memory

    reset_peak_memory("cpu")
    block = bytearray(300 * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    with_block = peak_memory_mb("cpu")
    del block
    reset_peak_memory("cpu")
    assert peak_memory_mb("cpu") < with_block - 200, "a reused worker's next cell does not inherit the peak"


def test_sweep_timing_is_wall_time_over_cell_time_spread_over_the_slots():
    timing = SweepTiming()
    with timing.phase("setup"):
        time.sleep(0.05)
    timing.phases["cells"] = 10.0
    timing.concurrency = 2

    class Outcome:
        def __init__(self, seconds):
            self.seconds = seconds

    timing.stop([Outcome(8.0), Outcome(8.0), Outcome(None)])
    assert timing.cell_seconds == 16.0 and timing.phases["setup"] >= 0.05
    assert timing.efficiency == pytest.approx(timing.total / 8.0)
    metrics = timing.metrics()
    assert metrics["timing/cell_seconds_sum"] == 16.0 and metrics["timing/concurrency"] == 2
    assert "timing/efficiency" in metrics and "timing/setup_seconds" in metrics
    assert "at 2 at once" in timing.summary()


def test_cells_start_longest_first_and_ties_keep_the_plan_order(tmp_path):
    spec = tmp_path / "sizes.yaml"
    spec.write_text((REPO / "sweeps" / "smoke.yaml").read_text().replace(
        "instances_per_task: [8, 16]", "model: [t5-nano, t5-mini, t5-tiny]"))
    cells = expand_grid(load_spec(str(spec), [], tmp_path), "fp")
    ordered = longest_first(cells)
    assert [c.settings.model for c in ordered] == ["t5-mini", "t5-mini", "t5-tiny", "t5-tiny", "t5-nano", "t5-nano"]
    assert [c.axis_values["seed"] for c in ordered[:2]] == [0, 1]
    assert estimate_seconds(ordered[0]) > estimate_seconds(ordered[-1])


def test_overlapped_runs_both_and_raises_the_background_error_after_both_finish():
    order = []

    def foreground():
        time.sleep(0.05)
        order.append("foreground")

    def background():
        assert threading.current_thread() is not threading.main_thread()
        order.append("background")
        return 42

    assert overlapped(foreground, background) == 42 and sorted(order) == ["background", "foreground"]

    def failing():
        raise ValueError("store down")

    finished = []
    with pytest.raises(ValueError, match="store down"):
        overlapped(lambda: finished.append(True), failing)
    assert finished == [True], "the foreground (Ray's start) is not cut short"


def test_plan_prefetch_reads_what_an_in_process_read_does_and_creates_no_store(tmp_path):
    from mlflow.tracking import MlflowClient

    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert StatusPrefetch(missing, "x", 5).result() == {} and not (tmp_path / "none.db").exists()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("exp")
    for cell_id, status in (("a", "FINISHED"), ("b", "FAILED"), ("c", "KILLED")):
        run = client.create_run(experiment, tags={"ablate.role": "cell", "ablate.cell_id": cell_id})
        client.set_terminated(run.info.run_id, status)
    expected = {"a": "done", "b": "failed", "c": "to run"}
    assert read_cell_statuses(uri, "exp", 5) == expected
    assert StatusPrefetch(uri, "exp", 5).result() == expected


def test_training_reads_a_batch_of_rows_in_one_call():
    from datasets import Dataset

    from ablate.train import _rows

    features = Dataset.from_list([{"input_ids": [i, i + 1], "labels": [i]} for i in range(20)])
    indices = [7, 3, 19, 3]
    assert _rows(features, indices) == [features[i] for i in indices]
