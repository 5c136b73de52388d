"""Checks that need the plan and the task data: every problem listed at once, before anything starts."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ablate.data.clusters import category_to_cluster
from ablate.data.select import sample_instances, select_tasks
from ablate.data.sources import SYNTHETIC, check_source, resolve_task_dir
from ablate.data.synthetic import SUITE_VERSION
from ablate.data.tasks import TaskLibrary
from ablate.errors import AblateError, did_you_mean
from ablate.plan import Cell


def _cluster_errors(cell: Cell) -> list[str]:
    data, cluster_map = cell.settings.data, cell.settings.cluster_map
    errors = []
    try:
        category_to_cluster(cluster_map)
    except AblateError as exc:
        errors.append(f"data.clusters: {exc.message}")
    for field, names in (("data.held_out_clusters", data.held_out_clusters),
                         ("data.train_clusters", data.train_clusters or [])):
        for name in names:
            if name not in cluster_map:
                errors.append(f"{field}: unknown cluster '{name}'. {did_you_mean(name, list(cluster_map))}")
    overlap = set(data.held_out_clusters) & set(data.train_clusters or [])
    if overlap:
        errors.append(f"data.train_clusters: held-out cluster(s) {', '.join(sorted(overlap))} are also training "
                      "clusters; a held-out cluster must stay unseen. Remove them from the training clusters.")
    return errors


def _data_errors(cell: Cell, library: TaskLibrary) -> list[str]:
    data = cell.settings.data
    try:
        selection = select_tasks(library, split=data.split, held_out_clusters=data.held_out_clusters,
                                 train_clusters=data.train_clusters, num_train_tasks=data.num_train_tasks,
                                 cluster_map=cell.settings.cluster_map, seed=cell.settings.seed)
        for name in selection.train_tasks:
            sample_instances(library.get(name), data.instances_per_task, cell.settings.seed)
        for name in selection.test_tasks:
            library.get(name)
    except AblateError as exc:
        return [exc.render()]
    return []


def check_cells(cells: list[Cell], cache_dir: Path) -> list[str]:
    """Problems of the planned cells against their data; empty when the sweep can start.

    The synthetic suite is generated into a scratch folder when not cached yet, so checking a
    spec writes nothing.
    """
    errors: list[str] = []
    seen: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="ablate-check-") as scratch:
        libraries: dict[tuple[str, int], TaskLibrary] = {}
        for cell in cells:
            data = cell.settings.data
            key = data.model_dump_json(exclude={"synthetic_seed"}) + str(cell.settings.seed)
            if key in seen:
                continue
            seen.add(key)
            cluster_errors = _cluster_errors(cell)
            errors.extend(e for e in cluster_errors if e not in errors)
            if cluster_errors:
                continue
            source = (data.source, data.synthetic_seed)
            if source not in libraries:
                try:
                    check_source(data.source)
                except AblateError as exc:
                    errors.append(exc.render())
                    return errors
                cached = cache_dir / f"synthetic-v{SUITE_VERSION}-seed{data.synthetic_seed}"
                base = Path(scratch) if data.source == SYNTHETIC and not cached.is_dir() else cache_dir
                libraries[source] = TaskLibrary(resolve_task_dir(data.source, data.synthetic_seed, base))
            for error in _data_errors(cell, libraries[source]):
                if error not in errors:
                    errors.append(f"{cell.name}: {error}" if len(cells) > 1 else error)
    return errors
