"""FLAN's presets (ablate.data.flan): the 12-cluster map over SuperNI categories, its exclusion
groups and ablation order, and leave-one-cluster-out."""

import pytest

from ablate.data.clusters import SUPERNI_CATEGORIES, category_to_cluster
from ablate.data.flan import (
    FLAN_ABLATION_HELD_OUT,
    FLAN_ABLATION_ORDER,
    FLAN_CLUSTERS,
    FLAN_EXCLUSIONS,
    excluded_with,
    loo_values,
    preset,
)
from ablate.data.synthetic import write_suite
from ablate.data.library import TaskLibrary
from ablate.errors import AblateError

FLAN_NAMES = ("nli", "commonsense", "sentiment", "paraphrase", "closed_book_qa", "struct_to_text", "translation",
              "reading_comp", "reading_comp_with_commonsense", "coreference", "misc", "summarization")


def test_the_flan_map_has_flans_12_clusters_and_every_superni_category_once():
    assert tuple(FLAN_CLUSTERS) == FLAN_NAMES
    owner = category_to_cluster(FLAN_CLUSTERS)  # raises if a category is in two clusters
    assert set(owner) == set(SUPERNI_CATEGORIES)
    assert sum(len(c) for c in FLAN_CLUSTERS.values()) == len(SUPERNI_CATEGORIES) == 76
    assert all(FLAN_CLUSTERS[name] for name in FLAN_NAMES)
    assert owner["Textual Entailment"] == "nli" and owner["Question Answering"] == "closed_book_qa"
    assert owner["Dialogue Generation"] == "misc"  # FLAN keeps conversational QA in misc


def test_exclusion_groups_and_the_ablation_order_name_real_clusters():
    for group in FLAN_EXCLUSIONS:
        assert len(set(group)) == len(group) >= 2 and set(group) <= set(FLAN_CLUSTERS)
    assert set(FLAN_ABLATION_HELD_OUT) <= set(FLAN_CLUSTERS) and set(FLAN_ABLATION_ORDER) <= set(FLAN_CLUSTERS)
    assert len(set(FLAN_ABLATION_ORDER)) == 7 and not set(FLAN_ABLATION_ORDER) & set(FLAN_ABLATION_HELD_OUT)
    assert FLAN_ABLATION_ORDER[:2] == ("summarization", "translation")
    # FLAN's rules: paraphrase <-> nli; reading comprehension and commonsense each exclude the
    # combined cluster, which excludes both; reading comprehension and commonsense keep each other.
    assert excluded_with("nli", FLAN_EXCLUSIONS) == ["paraphrase"]
    assert excluded_with("paraphrase", FLAN_EXCLUSIONS) == ["nli"]
    assert excluded_with("reading_comp", FLAN_EXCLUSIONS) == ["reading_comp_with_commonsense"]
    assert excluded_with("commonsense", FLAN_EXCLUSIONS) == ["reading_comp_with_commonsense"]
    assert sorted(excluded_with("reading_comp_with_commonsense", FLAN_EXCLUSIONS)) == ["commonsense", "reading_comp"]
    assert excluded_with("sentiment", FLAN_EXCLUSIONS) == []


def test_the_builtin_suite_fills_the_held_out_and_most_training_clusters(tmp_path):
    library = TaskLibrary(write_suite(tmp_path, seed=0))
    owner = category_to_cluster(FLAN_CLUSTERS)
    used = {owner[library.category(name)] for name in library.names()}
    assert set(FLAN_ABLATION_HELD_OUT) <= used
    assert set(FLAN_ABLATION_ORDER) - used == {"struct_to_text"}


def test_presets_by_name():
    assert preset("clusters", "flan") is FLAN_CLUSTERS and preset("exclusions", "flan") is FLAN_EXCLUSIONS
    assert preset("order", "flan") == FLAN_ABLATION_ORDER and preset("held_out", "flan") == FLAN_ABLATION_HELD_OUT
    with pytest.raises(AblateError, match="Did you mean 'flan'") as caught:
        preset("clusters", "flann", field="data.clusters")
    assert caught.value.field == "data.clusters"


def test_leave_one_cluster_out_trains_on_all_others_but_the_excluded():
    values = loo_values(list(FLAN_CLUSTERS), FLAN_EXCLUSIONS)
    assert [held for held, _ in values] == list(FLAN_CLUSTERS)
    train = dict(values)
    others = [c for c in FLAN_CLUSTERS]
    assert train["sentiment"] == [c for c in others if c != "sentiment"]
    assert train["nli"] == [c for c in others if c not in ("nli", "paraphrase")]
    assert "commonsense" in train["reading_comp"] and "reading_comp_with_commonsense" not in train["reading_comp"]
    assert train["reading_comp_with_commonsense"] == [
        c for c in others if c not in ("reading_comp_with_commonsense", "reading_comp", "commonsense")]
    for held, clusters in values:
        assert held not in clusters and len(set(clusters)) == len(clusters)


def test_leave_one_cluster_out_over_a_larger_map_and_its_errors():
    # Hold out two clusters one by one; train on the rest of the map.
    values = loo_values(["nli", "sentiment"], [("nli", "paraphrase")], universe=["nli", "paraphrase", "sentiment", "misc"])
    assert values == [("nli", ["sentiment", "misc"]), ("sentiment", ["nli", "paraphrase", "misc"])]
    bad = [
        ({"clusters": [], "exclusion_groups": ()}, "no clusters"),
        ({"clusters": ["nli", "nli"], "exclusion_groups": ()}, "appears twice"),
        ({"clusters": ["nlii"], "exclusion_groups": (), "universe": ["nli", "misc"]}, "Did you mean 'nli'"),
        ({"clusters": ["nli", "misc"], "exclusion_groups": [("nli",)]}, "fewer than two"),
        ({"clusters": ["nli", "misc"], "exclusion_groups": [("nli", "paraphrse")]}, "paraphrse"),
        ({"clusters": ["nli", "paraphrase"], "exclusion_groups": [("nli", "paraphrase")]}, "no cluster to train on"),
    ]
    for kwargs, message in bad:
        with pytest.raises(AblateError, match=message) as caught:
            loo_values(**kwargs, field="axes.held_out_cluster")
        assert caught.value.field == "axes.held_out_cluster"
