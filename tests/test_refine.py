"""The adaptive proposer (ablate.refine) on simulated finished cells, and the refine: block's checks."""

import math

import pytest
import yaml

from ablate import results
from ablate.errors import AblateError
from ablate.plan import expand_grid
from ablate.refine import RefineProposer
from ablate.spec import SweepSpec, load_spec

KEY = results.MetricKey("def", "rougeL").key()
SPEC = {"name": "refined", "data": {"source": "synthetic", "instances_per_task": 8}, "model": "t5-tiny",
        "train": {"steps": 10, "batch_size": 4, "learning_rate": 1e-3, "max_source_length": 64,
                  "max_target_length": 8, "encoding": "def"},
        "seeds": [0, 1, 2],
        "refine": {"axis": "instances_per_task", "candidates": {"low": 1, "high": 256, "every": "power_of_2"},
                   "goal": {"kind": "knee", "ratio": 4}, "budget": {"cells": 27, "round_size": 2}}}


def saturating(x: float, seed: int) -> float:
    """70 - 60 exp(-u / s), knee at 16, with a fixed per-seed offset (a noise that repeats)."""
    scale = 0.5 * math.log(256) / math.log(20)
    return 70 - 60 * math.exp(-math.log(x) / scale) + (-1.5, 0.4, 1.1)[seed] + 0.3 * math.sin(7 * x)


def flat(x: float, seed: int) -> float:
    return 40 + (-1.0, 0.2, 0.8)[seed] + 0.2 * math.cos(3 * x)


def grid(**refine):
    spec = SweepSpec.model_validate({**SPEC, "refine": {**SPEC["refine"], **refine}})
    return spec, expand_grid(spec, "fp")


def run(spec, cells, truth, rounds_cap=50, bootstrap_rounds=300):
    proposer = RefineProposer(cells, spec.refine, spec.seeds, spec.refine.budget.round_size or 2,
                              bootstrap_rounds=bootstrap_rounds)
    finished, proposals = {}, []
    for index in range(rounds_cap):
        proposal = proposer.propose(index, finished)
        if proposal is None:
            break
        proposals.append(proposal)
        for cell in proposal.cells:
            finished.setdefault(cell.id, {KEY: truth(cell.axis_values["instances_per_task"], cell.settings.seed)})
    return proposer, proposals, finished


def test_the_candidates_are_the_grid_and_the_first_round_is_the_initial_design():
    spec, cells = grid()
    assert spec.axes["instances_per_task"] == [1, 2, 4, 8, 16, 32, 64, 128, 256] and len(cells) == 27
    proposer = RefineProposer(cells, spec.refine, spec.seeds, 2, bootstrap_rounds=100)
    first = proposer.propose(0, {})
    assert sorted({c.axis_values["instances_per_task"] for c in first.cells}) == [1, 8, 32, 256]
    assert {c.settings.seed for c in first.cells} == {0, 1}
    assert {c.id for c in first.cells} <= {c.id for c in cells}  # ordinary cells, the standard ids
    assert all(first.reasons[c.id].startswith("round 0: initial design") for c in first.cells)


def test_a_saturating_curve_stops_when_the_knee_is_located_with_a_reason_for_every_cell():
    spec, cells = grid()
    proposer, proposals, finished = run(spec, cells, saturating)
    assert proposer.stopped.startswith("goal met after ") and "of at most 27 cells" in proposer.stopped
    used = int(proposer.stopped.split("after ")[1].split(" ")[0])
    assert used == len(finished) < 27
    knee = proposer.progress[-1][1]
    assert knee[results.REFINE_GOAL_MET] == 1.0 and knee[results.REFINE_GOAL_VALUE] <= 4
    assert knee[results.REFINE_KNEE_LOW] <= 16 <= knee[results.REFINE_KNEE_HIGH]
    assert [r for r, _ in proposer.progress] == list(range(len(proposals)))
    for proposal in proposals:
        assert set(proposal.reasons) == {c.id for c in proposal.cells} and all(proposal.reasons.values())
    later = [why for p in proposals[1:] for why in p.reasons.values()]
    assert any("knee" in why or "widest gap" in why for why in later)


def test_proposals_are_a_function_of_the_finished_cells():
    spec, cells = grid()
    first, proposals, finished = run(spec, cells, saturating)
    assert len(proposals) >= 2
    # A fresh proposer (a re-run after kill -9) given the cells finished in round 0 proposes round 0 again
    # (all finished: cached), then round 1; killed half way through round 1, the same two rounds.
    done_after_round_0 = {c.id: finished[c.id] for c in proposals[0].cells}
    for done in (done_after_round_0, {**done_after_round_0, proposals[1].cells[0].id: finished[proposals[1].cells[0].id]}):
        again = RefineProposer(cells, spec.refine, spec.seeds, 2, bootstrap_rounds=300)
        assert [c.id for c in again.propose(0, done).cells] == [c.id for c in proposals[0].cells]
        resumed = again.propose(1, done)
        assert [c.id for c in resumed.cells] == [c.id for c in proposals[1].cells]
        assert resumed.reasons == proposals[1].reasons
    # A finished refinement re-run proposes exactly its rounds, all finished: nothing to train.
    rerun = RefineProposer(cells, spec.refine, spec.seeds, 2, bootstrap_rounds=300)
    for index, proposal in enumerate(proposals):
        replay = rerun.propose(index, finished)
        assert [c.id for c in replay.cells] == [c.id for c in proposal.cells] and replay.reasons == proposal.reasons
    assert [c.id for p in proposals for c in p.cells] == list(finished)
    assert rerun.propose(len(proposals), finished) is None
    assert rerun.stopped == first.stopped


def test_the_budget_caps_the_cells_and_says_so():
    spec, cells = grid(budget={"cells": 10, "round_size": 3}, goal={"kind": "knee", "ratio": 1.01})
    proposer, proposals, finished = run(spec, cells, saturating)
    assert len(finished) == 10 and all(len(p.cells) <= 8 for p in proposals[:1])
    assert proposer.stopped.startswith("budget spent: 10 of at most 10 cells, goal not met")


def test_a_flat_curve_establishes_no_knee():
    spec, cells = grid()
    proposer, _, finished = run(spec, cells, flat)
    assert proposer.stopped.startswith("goal met after") and "no knee" in proposer.stopped
    by_id = {c.id: c for c in cells}
    xs = {by_id[cid].axis_values["instances_per_task"] for cid in finished}
    assert len(xs) >= 5 and {1, 256} <= xs  # the whole range, enough points for a knee to show


def test_the_points_goal_measures_every_candidate_and_stops_on_tight_intervals():
    spec, cells = grid(goal={"kind": "points", "half_width": 5}, candidates=[1, 4, 16], budget={"cells": 9})
    proposer, _, finished = run(spec, cells, saturating)
    # Two seeds give half-widths near 12 (t with 1 degree of freedom); three bring every point under 5.
    assert proposer.stopped.startswith("goal met after 9 of at most 9 cells (every point's CI half-width")
    xs = {c.axis_values["instances_per_task"] for c in cells if c.id in finished}
    assert xs == {1, 4, 16}


def test_the_best_goal_on_a_categorical_axis_names_the_best():
    raw = {**SPEC, "refine": {"axis": "train.learning_rate", "goal": {"kind": "best"}, "budget": {"cells": 9}},
           "axes": {"train.learning_rate": [1e-4, 1e-3, 1e-2]}}
    spec = SweepSpec.model_validate(raw)
    cells = expand_grid(spec, "fp")
    proposer = RefineProposer(cells, spec.refine, spec.seeds, 2, bootstrap_rounds=100)
    finished, index = {}, 0
    score = {1e-4: 20.0, 1e-3: 60.0, 1e-2: 30.0}
    while (proposal := proposer.propose(index, finished)) is not None:
        for c in proposal.cells:
            finished[c.id] = {KEY: score[c.settings.train.learning_rate] + (0.5, -0.5, 0.2)[c.settings.seed]}
        index += 1
    assert "best setting beats every other" in proposer.stopped


BAD = [
    ({"candidates": {"low": 8, "high": 4}}, "high (4) must be above low (8)"),
    ({"budget": {"round_size": 2}}, "give cells or cell_hours"),
    ({"goal": {"kind": "knee", "ratio": 0.5}}, "refine.goal.knee.ratio"),
    ({"goal": {"kind": "guess"}}, "refine.goal"),
    ({"axis": "train.learning_rate", "candidates": [1e-3, 1e-2]}, "goal 'knee' needs a count axis"),
    ({"candidates": {"low": 0, "high": 8}}, "cannot be placed on it"),
    ({"initial": {"seeds": 5}}, "lists 3 seed(s)"),
    ({"candidates": [4]}, "1 candidate value(s)"),
]


@pytest.mark.parametrize("change, message", BAD)
def test_a_bad_refine_block_is_one_error_naming_the_field(tmp_path, change, message):
    raw = {**SPEC, "refine": {**SPEC["refine"], **change}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(AblateError) as caught:
        load_spec(tmp_path / "s.yaml")
    assert message in str(caught.value), str(caught.value)


def test_candidates_given_twice_and_other_varying_axes_are_refused(tmp_path):
    for extra in ({"instances_per_task": [1, 2]}, {"train.learning_rate": [1e-3, 1e-2]}):
        (tmp_path / "s.yaml").write_text(yaml.safe_dump({**SPEC, "axes": extra}))
        with pytest.raises(AblateError) as caught:
            load_spec(tmp_path / "s.yaml")
        assert "refine" in str(caught.value)


def test_overrides_set_the_budget_and_the_block_is_outside_every_cell_id(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    spec = load_spec(tmp_path / "s.yaml", ["refine.budget.cells=12"])
    assert spec.refine.budget.cells == 12
    plain = SweepSpec.model_validate({**{k: v for k, v in SPEC.items() if k != "refine"},
                                      "axes": {"instances_per_task": [1, 2, 4, 8, 16, 32, 64, 128, 256]}})
    assert [c.id for c in expand_grid(plain, "fp")] == [c.id for c in expand_grid(spec, "fp")]


def test_the_look_ahead_predicts_the_profile_interval_the_fit_gives_with_that_cell():
    """knee_log_ratio's closed form against stats' own saturating fit of the data with the extra cell
    (at the fit's prediction): the predicted interval's ends lie in the same grid steps."""
    import numpy as np
    from scipy import stats as sps

    from ablate.analyse import stats
    from ablate.refine import knee_log_ratio

    rng = np.random.default_rng(0)
    us = [math.log(x) for x in (1, 1, 4, 4, 16, 16, 64, 256, 256)]
    ys = [70 - 60 * math.exp(-u / 0.93) + rng.normal(0, 2) for u in us]
    extra = [math.log(x) for x in (2, 8, 32, 128)]
    widths, predicted = knee_log_ratio(us, ys, extra, log_scale=True)
    assert len(widths) == 4 and all(np.isfinite(widths))
    gain = math.log(20)
    for u, width, y in zip(extra, widths, predicted):
        u_all, y_all = np.array(us + [u]), np.array(ys + [y])
        *_, profile = stats._saturating(u_all, y_all[None, :])
        profile = profile[0]
        n = len(u_all)
        inside = np.where(profile <= profile.min() * (1 + sps.f.ppf(0.95, 1, n - 4) / (n - 4)))[0]
        scales = stats._scales(float(u_all.max() - u_all.min()))
        widest = (scales[inside.max() + 1] - scales[max(inside.min() - 1, 0)]) * gain
        narrowest = (scales[inside.max()] - scales[inside.min()]) * gain
        assert narrowest - 1e-9 <= width <= widest + 1e-9
    # Where the curve bends (2 to 8) one more cell says more about the knee than on the plateau (128).
    assert min(widths[:2]) < widths[3]


def test_a_budget_limited_knee_refinement_spends_its_later_cells_where_they_narrow_the_interval():
    spec, cells = grid(budget={"cells": 16, "round_size": 2}, goal={"kind": "knee", "ratio": 1.01})
    proposer, proposals, finished = run(spec, cells, saturating)
    assert len(finished) == 16 and proposer.stopped.startswith("budget spent: 16 of at most 16 cells")
    later = [why for p in proposals[2:] for why in p.reasons.values()]
    assert later and all("narrows the knee's interval most" in why for why in later)
