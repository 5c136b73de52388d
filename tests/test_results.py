"""The results schema: names to MLflow keys (injective, checked by MLflow's own validator) and back."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.utils.validation import _validate_metric_name, _validate_param_name, _validate_tag_name

from ablate import results
from ablate.results import MetricKey, eval_metrics, name_from_key, name_key, parse_metric_key

AWKWARD = ["Text Generation -> Word Generation", "Misc.", "Question Answering (QA)", "a/b", "quote's \"here\"",
           "Übersetzung", "翻訳", ".", "..", "...", "a:3e:b", "(no cluster)", " leading", "tab\there", "emoji 🙂"]


@pytest.mark.parametrize("name", AWKWARD)
def test_awkward_names_make_valid_keys_that_read_back(name):
    key = MetricKey("def+pos2", "exact_match", "category", name).key()
    _validate_metric_name(key)
    _validate_param_name(key)
    _validate_tag_name(key)
    assert parse_metric_key(key) == MetricKey("def+pos2", "exact_match", "category", name)


def test_plain_names_stay_readable():
    assert name_key("task1_copy_words") == "task1_copy_words"
    assert name_key("Misc.") == "Misc."
    assert MetricKey("def+pos2", "rougeL", "cluster", "nli").key() == "def-pos2/cluster/nli/rougeL"
    assert MetricKey("def", "rougeL").key() == "def/rougeL"


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_unicode_name_round_trips_through_a_valid_key(name):
    segment = name_key(name)
    assert name_from_key(segment) == name
    _validate_metric_name(f"def/task/{segment}/rougeL")


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=12), st.text(min_size=1, max_size=12))
def test_two_names_never_share_a_key(first, second):
    assert (name_key(first) == name_key(second)) == (first == second)


def test_eval_metrics_encode_every_group_and_parse_back():
    scores = {"exact_match": 10.0, "rouge1": 20.0, "rougeL": 30.0,
              "per_task": {"task1_x": {"exact_match": 1.0, "rouge1": 2.0, "rougeL": 3.0}},
              "per_category": {"text_generation_->_word_generation": {"exact_match": 4.0, "rouge1": 5.0, "rougeL": 6.0}},
              "per_category_headline": {"text_generation_->_word_generation": 6.0},
              "per_cluster": {results.NO_CLUSTER: {"exact_match": 7.0, "rouge1": 8.0, "rougeL": 9.0}}}
    metrics = eval_metrics("def+pos2", scores, ("exact_match", "rouge1", "rougeL"))
    for key in metrics:
        _validate_metric_name(key)
    parsed = {parse_metric_key(k): v for k, v in metrics.items()}
    assert parsed[MetricKey("def+pos2", "rougeL")] == 30.0
    assert parsed[MetricKey("def+pos2", "headline", "category", "text_generation_->_word_generation")] == 6.0
    assert results.cluster_scores(metrics, "def+pos2", "rougeL") == {results.NO_CLUSTER: 9.0}
    assert results.overall_score(metrics, "def+pos2", "exact_match") == 10.0
    assert set(results.names_in(scores).values()) == {"task1_x", "text_generation_->_word_generation",
                                                      results.NO_CLUSTER}


def test_keys_that_are_not_evaluation_metrics_are_not_parsed():
    for key in ("train_loss", "num_parameters", "def/task/x", "baseline/copy_demo/rougeL"):
        assert parse_metric_key(key) is None


def test_settings_params_encode_cluster_names_from_data():
    params = results.settings_params({"data": {"clusters": {"qa (open)": ["Question Answering"]}}, "seeds": [0, 1]})
    for key in params:
        _validate_param_name(key)
    assert params == {"data.clusters.qa :28:open:29:": '["Question Answering"]', "seeds": "[0, 1]"}


def test_an_empty_name_is_refused():
    with pytest.raises(ValueError):
        name_key("")


def test_numeric_axis_values_become_metrics_for_scatter_charts():
    assert results.axis_metrics({"train_clusters": ["a", "b"], "instances_per_task": 64, "model": "t5-tiny",
                                 "seed": 1}) == {"axis/train_clusters": 2.0, "axis/instances_per_task": 64.0,
                                                 "axis/seed": 1.0}
