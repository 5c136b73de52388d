"""Checks that need the plan and the task data: every problem listed at once, before anything starts.

A spec that passes does not fail later for a reason knowable in advance: the clusters exist, every
cell's tasks and instances are there, every name from the data makes a valid MLflow key, and
every pretrained model's tokenizer loads. Test tasks outside every cluster are a warning: they
are scored under "(no cluster)"; so are encodings asking for demonstrations the tasks lack. The
notes say what the task selection removed. A problem several cells share is listed once.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ablate import results
from ablate.data.clusters import category_to_cluster
from ablate.data.encoding import parse_encoding
from ablate.data.select import (HELD_OUT, SPLIT_TEST, UNLISTED, TaskSelection, check_sample_size,
                                select_tasks)
from ablate.data.sources import HF_PREFIX, cached_task_dir, resolve_task_dir
from ablate.data.library import TaskLibrary
from ablate.errors import AblateError, did_you_mean
from ablate.model import PRESETS, is_baseline, missing_weights
from ablate.plan import Cell


@dataclass
class Checks:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts worth showing (what the task selection removed)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def error(self, text: str) -> None:
        if text not in self.errors:
            self.errors.append(text)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


def _cluster_errors(cell: Cell) -> list[str]:
    data, cluster_map = cell.settings.data, cell.settings.cluster_map
    errors = []
    try:
        category_to_cluster(cluster_map)
    except AblateError as exc:
        errors.append(f"data.clusters: {exc.message}")
    for field_name, names in (("data.held_out_clusters", data.held_out_clusters),
                              ("data.train_clusters", data.train_clusters or [])):
        for name in names:
            if name not in cluster_map:
                errors.append(f"{field_name}: unknown cluster '{name}'. {did_you_mean(name, list(cluster_map))}")
    overlap = set(data.held_out_clusters) & set(data.train_clusters or [])
    if overlap:
        errors.append(f"data.train_clusters: held-out cluster(s) {', '.join(sorted(overlap))} are also training "
                      "clusters; a held-out cluster must stay unseen. Remove them from the training clusters.")
    return errors


def _sample_errors(cell: Cell, selection: TaskSelection, library: TaskLibrary, fewest: dict) -> list[str]:
    """Whether the cell can sample its training instances from every training task. `fewest`
    memoizes the smallest instance count of each set of training tasks (grids share them)."""
    wanted = cell.settings.data.instances_per_task
    try:
        if selection.train_tasks not in fewest:
            fewest[selection.train_tasks] = min((library.instance_count(n) for n in selection.train_tasks),
                                                default=wanted)
        if wanted > fewest[selection.train_tasks]:  # name the first task in training order that is short
            for name in selection.train_tasks:
                check_sample_size(name, library.instance_count(name), wanted)
    except AblateError as exc:
        return [exc.as_item()]
    return []


def _test_set_checks(cell: Cell, selection: TaskSelection, library: TaskLibrary, checks: Checks) -> None:
    """Keys the cell's evaluation will write, and test tasks no cluster holds."""
    cluster_of = category_to_cluster(cell.settings.cluster_map)
    if not selection.test_tasks:
        checks.error("the cell has no test tasks, so there is nothing to score; list test tasks in the split's "
                     "test_tasks.txt or name data.held_out_clusters that hold tasks.")
    for name in selection.test_tasks:
        if not library.instance_count(name):
            checks.error(f"test task '{name}' has no instances, so it cannot be scored; give it instances "
                         "or leave it out of the test split.")
    names = {"task": list(selection.test_tasks), "category": [library.category(n) for n in selection.test_tasks],
             "cluster": [*cluster_of.values(), results.NO_CLUSTER]}
    for encoding in cell.settings.test_encodings:
        for group, values in names.items():
            for name in values:
                if not name.strip():
                    checks.error(f"a test task has an empty {group} name; give every task a category.")
                    continue
                key = results.MetricKey(encoding, results.HEADLINE, group, name).key()
                if len(key) > results.MAX_KEY_LENGTH:
                    checks.error(f"the {group} name '{name[:60]}...' makes the MLflow key '{key[:60]}...' longer "
                                 f"than {results.MAX_KEY_LENGTH} characters; shorten the name.")
    unclustered = sorted({n for n in selection.test_tasks if library.category(n) not in cluster_of})
    if unclustered:
        categories = sorted({library.category(n) for n in unclustered})
        checks.warn(f"{len(unclustered)} test task(s) have a category no cluster names "
                    f"({', '.join(categories[:8])}{', ...' if len(categories) > 8 else ''}); they are scored under "
                    f"'{results.NO_CLUSTER}' and count in the overall mean. Add the categories to data.clusters "
                    "to give them a cluster.")


def _evaluator_checks(cell: Cell, selection: TaskSelection, library: TaskLibrary, checks: Checks) -> list[str]:
    """Each evaluator's own checks of the cell (errors returned, warnings recorded)."""
    from ablate.evaluators import evaluator_of

    errors = []
    for config in cell.settings.eval.evaluators:
        evaluator = evaluator_of(config.kind)
        if evaluator.check is not None:
            found, warnings = evaluator.check(cell, selection, library, config)
            errors += found
            for warning in warnings:
                checks.warn(warning)
    return errors


def for_cells(error: str, names: list[str], checked: int) -> str:
    """A problem as listed once: alone when every checked cell has it, else with the cells named."""
    if len(names) >= checked:
        return error
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{shown}: {error}"


def selection_note(data, selection: TaskSelection) -> str:
    """What a plan says about a cell's tasks: how many are tested, and what the split's rules removed."""
    removed = selection.removed_text(data.split, (UNLISTED, SPLIT_TEST, HELD_OUT))
    held_out = f"the held-out clusters ({', '.join(data.held_out_clusters)})" if data.held_out_clusters else \
        f"split '{data.split}'"
    return (f"{len(selection.test_tasks)} test task(s) from {held_out}"
            + (f"; removed: {removed}" if removed else "") + ".")


def empty_train_clusters(library: TaskLibrary, data, cluster_map: dict, counts: dict[tuple, int]) -> list[str]:
    """The cell's training clusters that hold no task of the split's training list (on the
    release's default split, a cluster whose categories are all test categories). `counts`
    memoizes the number of training tasks per (split, cluster)."""
    from ablate.data.select import tasks_in_clusters

    empty = []
    for cluster in data.train_clusters or []:
        key = (str(library.root), data.split, cluster, json.dumps(cluster_map.get(cluster), sort_keys=True))
        if key not in counts:
            counts[key] = len(tasks_in_clusters(library, library.split(data.split).train_tasks, [cluster], cluster_map))
        if not counts[key]:
            empty.append(cluster)
    return empty


class Demonstrations:
    """Encodings that ask for positive or negative examples of tasks that have none: gathered over
    the cells, then one warning per (encoding, kind, role), since such prompts silently lack them."""

    def __init__(self) -> None:
        self._seen: set[tuple] = set()
        self._lacking: dict[tuple[str, str, str], tuple[set[str], set[str]]] = {}

    def add(self, library: TaskLibrary, tasks: tuple[str, ...], encoding: str, role: str) -> None:
        if (tasks, encoding, role) in self._seen:
            return
        self._seen.add((tasks, encoding, role))
        parsed = parse_encoding(encoding)
        for kind, wanted, position in (("positive", parsed.num_pos, 0), ("negative", parsed.num_neg, 1)):
            if wanted:
                used, lacking = self._lacking.setdefault((encoding, kind, role), (set(), set()))
                used.update(tasks)
                lacking.update(n for n in tasks if not library.example_counts(n)[position])

    def warnings(self, hf_source: bool) -> list[str]:
        texts = []
        for (encoding, kind, role), (used, lacking) in self._lacking.items():
            if lacking:
                where = (" The hf: conversion keeps them from the rows' `positive_examples` / `negative_examples` "
                         "columns; this dataset has none." if hf_source else "")
                texts.append(f"encoding '{encoding}' asks for {kind} examples, but {len(lacking)} of the {len(used)} "
                             f"{role} task(s) have none (e.g. {min(lacking)}): their prompts hold no {kind} "
                             f"examples.{where} Use data that has them, or an encoding without them.")
        return texts


def _stage_errors(cell: Cell) -> list[str]:
    """Each training stage's own checks of the cell (what it needs installed, the model kind it trains)."""
    from ablate.stages import stage_of

    if cell.settings.untuned:
        return []
    errors = []
    for config in cell.settings.stages:
        stage = stage_of(config.kind)
        if stage.check is not None:
            errors += stage.check(cell, config)
    return errors


def _tokenizer_error(model: str) -> str | None:
    """A pretrained model whose tokenizer cannot load (presets build theirs from the task data)."""
    if model in PRESETS or is_baseline(model):
        return None
    from ablate.model import load_pretrained_tokenizer

    try:
        load_pretrained_tokenizer(model)
    except AblateError as exc:
        return exc.as_item()
    return None


def _lora_error(model: str, lora) -> str | None:
    """LoRA target modules the model does not have (peft would fail inside the cell)."""
    if lora is None or lora.target_modules is None or is_baseline(model):
        return None
    from ablate.model import module_names

    names = module_names(model)
    missing = [m for m in lora.target_modules if m not in names]
    if not missing:
        return None
    return (f"train.lora.target_modules: {', '.join(missing)} not in model '{model}'. Its modules: "
            f"{', '.join(sorted(n for n in names if not n.isdigit()))}.")


def device_errors(cells: list[Cell], gpus_per_cell: float, gpus_here: int | None, cpus_per_cell: float = 0,
                  cpus_here: int | None = None) -> list[str]:
    """GPU and CPU requests the machine cannot meet (Ray Tune would wait for them forever) and
    precisions its device lacks. `gpus_here`, `cpus_here`: those of this machine (None: a cluster,
    checked once connected, ablate.ray_runtime.check_cluster_resources)."""
    errors = []
    if cpus_here is not None and cpus_per_cell > cpus_here:
        errors.append(f"resources.cpus_per_cell: {cpus_per_cell:g} CPUs per cell, but this machine has {cpus_here}, so "
                      f"no cell could ever start. Set resources.cpus_per_cell to at most {cpus_here}, or run on a "
                      "cluster (--address) with larger nodes.")
    if gpus_per_cell > 0 and gpus_here is not None and gpus_per_cell > gpus_here:
        errors.append(f"resources.gpus_per_cell: {gpus_per_cell:g} GPU(s) per cell, but this machine has "
                      f"{gpus_here}. Set resources.gpus_per_cell: 0 to run on the CPU, or run on a machine or "
                      "cluster (--address) with GPUs.")
    precisions = {c.settings.train.precision for c in cells if not is_baseline(c.settings.model)}
    if "fp16" in precisions and gpus_per_cell == 0:
        errors.append("train.precision: fp16 needs a GPU (resources.gpus_per_cell > 0); use bf16 or fp32 on a CPU.")
    if "bf16" in precisions and gpus_per_cell > 0 and gpus_here:
        import torch

        if not torch.cuda.is_bf16_supported():
            errors.append(f"train.precision: bf16 is not supported by this GPU ({torch.cuda.get_device_name(0)}); "
                          "use fp16 or fp32 (or auto).")
    return errors


def check_device(device: str, field: str = "--device") -> str:
    """A torch device this machine has, or an AblateError naming those it has: cpu; cuda or
    cuda:N below its GPU count; mps where Apple's GPU is there. Checked before any model loads."""
    import re

    match = re.fullmatch(r"(cpu|cuda|mps)(?::(\d+))?", device)
    if match is not None and match.group(1) == "cpu":
        return device
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    here = ["cpu", *(["cuda", *(f"cuda:{i}" for i in range(gpus))] if gpus else []), *(["mps"] if mps else [])]
    fix = f"give one of the devices of this machine: {', '.join(here)}."
    if match is None:
        raise AblateError(f"'{device}' is not a device name (cpu, cuda, cuda:N or mps).", field=field, fix=fix)
    kind, index = match.group(1), match.group(2)
    if kind == "cuda" and not gpus:
        reason = "this PyTorch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise AblateError(f"'{device}' asks for a CUDA GPU, but this machine has none ({reason}).", field=field,
                          fix=f"{fix} Or run on a machine with a GPU.")
    if kind == "cuda" and index is not None and int(index) >= gpus:
        raise AblateError(f"'{device}' asks for GPU {index}, but this machine has {gpus} (cuda:0 to cuda:{gpus - 1}).",
                          field=field, fix=fix)
    if kind == "mps" and not mps:
        raise AblateError(f"'{device}' asks for Apple's GPU (MPS), which this machine or PyTorch build lacks.",
                          field=field, fix=fix)
    return device


def local_cpu_count() -> int:
    """The CPUs a local Ray runtime offers cells (ablate.ray_runtime starts it with os.cpu_count())."""
    import os

    return os.cpu_count() or 1


def local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def check_cells(cells: list[Cell], cache_dir: Path) -> Checks:
    """Problems (errors) and warnings of the planned cells against their data and models.

    The synthetic suite is generated into a scratch folder when not cached yet, so checking a
    spec writes nothing.
    """
    checks = Checks()
    seen: set[str] = set()
    for model in sorted({c.settings.model for c in cells}):
        error = _tokenizer_error(model)
        if error:
            checks.error(f"model: {error}")
        weightless = missing_weights(model)
        if weightless:  # a warning: a folder of a config alone serves the cost estimate (tests/test_messages.py)
            checks.warn(f"model: {weightless}; the cells fail when they load it.")
    for cell in cells:
        error = _lora_error(cell.settings.model, cell.settings.train.lora)
        if error:
            checks.error(error)
    # Once per distinct (model, stages): a grid repeats them across seeds and data axes.
    for cell in {(c.settings.model, c.settings.untuned, tuple(s.model_dump_json() for s in c.settings.stages)): c
                 for c in cells}.values():
        for error in _stage_errors(cell):
            checks.error(error)
    with tempfile.TemporaryDirectory(prefix="ablate-check-") as scratch:
        libraries: dict[tuple[str, int], TaskLibrary] = {}
        # Grids share sections of settings: the checks run once per distinct input, not per cell.
        selections: dict[tuple, TaskSelection | AblateError] = {}
        test_sets: set[tuple] = set()
        evaluator_checks: set[tuple] = set()
        fewest: dict = {}
        dumped: dict[int, str] = {}  # by id() of a data section (cells share them; all alive here)
        cluster_checks: dict[str, list[str]] = {}
        demonstrations = Demonstrations()
        trained_clusters: dict[tuple, int] = {}
        cell_errors: dict[str, list[str]] = {}  # a problem -> the cells that have it (said once, not per cell)
        checked = 0
        for cell in cells:
            data, seed = cell.settings.data, cell.settings.seed
            if id(data) not in dumped:
                dumped[id(data)] = data.model_dump_json(exclude={"synthetic_seed"})
            key = (dumped[id(data)], seed)
            if key in seen:
                continue
            seen.add(key)
            checked += 1
            if dumped[id(data)] not in cluster_checks:
                cluster_checks[dumped[id(data)]] = _cluster_errors(cell)
            cluster_errors = cluster_checks[dumped[id(data)]]
            for error in cluster_errors:
                checks.error(error)
            if cluster_errors:
                continue
            source = (data.source, data.synthetic_seed)
            if source not in libraries:
                # A generated or converted source not cached yet is made in the scratch folder.
                cached = cached_task_dir(data.source, data.synthetic_seed, cache_dir)
                base = cache_dir if cached is None or cached.is_dir() else Path(scratch)
                # The index an earlier sweep saved is read; none is written here (validate writes nothing).
                libraries[source] = TaskLibrary(resolve_task_dir(data.source, data.synthetic_seed, base),
                                                index_dir=base / "index")
            library = libraries[source]
            # What the selection reads: everything but the number of instances (unless it is 0).
            selection_key = (source, data.model_dump_json(exclude={"synthetic_seed", "instances_per_task"}),
                             data.trains_nothing, seed)
            if selection_key not in selections:
                try:
                    selections[selection_key] = select_tasks(library, data, seed)
                except AblateError as exc:
                    selections[selection_key] = exc
            selection = selections[selection_key]
            if isinstance(selection, AblateError):
                errors = [selection.as_item()]
            else:
                test_set = (source, selection.test_tasks, tuple(cell.settings.test_encodings),
                            json.dumps(cell.settings.cluster_map, sort_keys=True))
                if test_set not in test_sets:
                    test_sets.add(test_set)
                    try:
                        _test_set_checks(cell, selection, library, checks)
                    except AblateError as exc:
                        cell_errors.setdefault(exc.as_item(), []).append(cell.name)
                errors = _sample_errors(cell, selection, library, fewest)
                try:
                    checks.note(selection_note(data, selection))
                    empty = empty_train_clusters(library, data, cell.settings.cluster_map, trained_clusters)
                    if empty:
                        checks.warn(f"training cluster(s) {', '.join(empty)} have no task in the training list of "
                                    f"split '{data.split}' (their tasks, if any, are test tasks of the split), so "
                                    "adding them adds no training task. Leave them out of data.train_clusters.")
                    for encoding in cell.settings.test_encodings:
                        demonstrations.add(library, selection.test_tasks, encoding, "test")
                    if not cell.settings.untuned and not is_baseline(cell.settings.model):
                        demonstrations.add(library, selection.train_tasks, cell.settings.train.encoding, "training")
                except AblateError as exc:
                    errors.append(exc.as_item())
                evaluated = (test_set, cell.settings.model, tuple(e.model_dump_json() for e in cell.settings.eval.evaluators))
                if evaluated not in evaluator_checks:
                    evaluator_checks.add(evaluated)
                    errors += _evaluator_checks(cell, selection, library, checks)
            for error in errors:
                cell_errors.setdefault(error, []).append(cell.name)
        for error, names in cell_errors.items():
            checks.error(for_cells(error, names, checked))
        for warning in demonstrations.warnings(any(c.settings.data.source.startswith(HF_PREFIX) for c in cells)):
            checks.warn(warning)
    return checks
