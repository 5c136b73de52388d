"""Official SuperNI metrics, against values computed by hand."""

import pytest

from ablate.metrics import compute_metrics, evaluate_predictions, headline_metric, normalize_answer


def test_normalisation_lowercases_strips_ascii_punctuation_and_collapses_spaces():
    assert normalize_answer("  The CAT,  sat! ") == "the cat sat"
    assert normalize_answer("naïve—café") == "naïve—café", "only ASCII punctuation is removed"


def test_exact_match_after_normalisation_and_max_over_references():
    assert compute_metrics(["Yes."], [["yes"]])["exact_match"] == 100.0
    assert compute_metrics(["no"], [["yes", "No!"]])["exact_match"] == 100.0
    assert compute_metrics(["no", "maybe"], [["yes"], ["maybe"]])["exact_match"] == 50.0


def test_rouge_uses_the_porter_stemmer():
    # "cats running" vs "cat runs": stems cat/run match on both tokens -> F = 1.
    assert compute_metrics(["cats running"], [["cat runs"]])["rougeL"] == 100.0
    assert compute_metrics(["cats running"], [["cat runs"]])["exact_match"] == 0.0


def test_rouge_l_by_hand():
    # prediction "a b c d", reference "a c e": LCS = 2 (a c); P = 2/4, R = 2/3, F = 2PR/(P+R) = 4/7.
    result = compute_metrics(["a b c d"], [["a c e"]])
    assert result["rougeL"] == round(100 * 4 / 7, 4) == 57.1429
    assert result["rouge1"] == 57.1429
    # rouge1 differs from rougeL when order differs: "c a" vs "a c": unigrams 2/2, LCS 1 -> F 0.5.
    swapped = compute_metrics(["c a"], [["a c"]])
    assert swapped["rouge1"] == 100.0 and swapped["rougeL"] == 50.0


def test_max_over_references_per_metric_and_rounding_to_four_decimals():
    result = compute_metrics(["x y z", "p"], [["x y q", "z"], ["p"]])
    # first: best rougeL is "x y q": LCS 2, P = R = 2/3 -> 0.6667; second: 1 -> mean 0.8333...
    assert result["rougeL"] == round(100 * (2 / 3 + 1) / 2, 4) == 83.3333


def test_empty_prediction_scores_zero_and_empty_reference_matches_empty_prediction():
    assert compute_metrics([""], [["something"]]) == {"exact_match": 0.0, "rouge1": 0.0, "rougeL": 0.0}
    assert compute_metrics([""], [[""]])["exact_match"] == 100.0


def test_grouped_metrics_per_task_category_and_cluster():
    result = evaluate_predictions(["yes", "no", "cat runs"], [["yes"], ["yes"], ["cats running"]],
                                  ["t1", "t1", "t2"], ["Textual Entailment", "Textual Entailment", "Title Generation"],
                                  ["nli", "nli", "summarization"])
    assert result["per_task"]["t1"]["exact_match"] == 50.0
    assert result["per_category"]["textual_entailment"]["exact_match"] == 50.0
    assert result["per_category"]["title_generation"]["rougeL"] == 100.0
    assert result["per_cluster"]["summarization"]["rougeL"] == 100.0
    assert result["headline_metric"] == {"textual_entailment": "exact_match", "title_generation": "rougeL"}
    assert result["per_category_headline"] == {"textual_entailment": 50.0, "title_generation": 100.0}
    assert result["exact_match"] == 33.3333


@pytest.mark.parametrize("category, metric", [
    ("Textual Entailment", "exact_match"), ("Keyword Tagging", "rougeL"), ("Word Analogy", "exact_match"),
    ("Sentiment Analysis", "exact_match"), ("Program Execution", "rougeL"), ("Toxic Language Detection", "exact_match"),
])
def test_headline_metric_per_category(category, metric):
    assert headline_metric(category) == metric
