"""`ablate evaluate`: a saved model scored with a cell's evaluators; its rank records hold every
option's score, equal to rank classification computed directly on the same rows."""

import json

import pytest

from ablate.cli import main


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, synthetic_dir):
    """An untuned llama-nano with the suite's word-level tokenizer, saved as a model folder."""
    from ablate.data.tokenizer import as_hf_tokenizer
    from ablate.model import build_model

    folder = tmp_path_factory.mktemp("model")
    tokenizer = as_hf_tokenizer(str(synthetic_dir / "tokenizer.json"))
    build_model("llama-nano", len(tokenizer), seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_evaluate_ranks_a_saved_model_as_a_cell_would(saved_model, synthetic_dir, tmp_path, capsys):
    from ablate.data.build import build_test_dataset, eval_pairs
    from ablate.data.clusters import DEFAULT_CLUSTERS, category_to_cluster
    from ablate.data.encoding import tokenizer_truncation
    from ablate.data.options import instance_options
    from ablate.data.library import TaskLibrary
    from ablate.model import build_model, load_pretrained_tokenizer
    from ablate.rank import rank_rows

    out = tmp_path / "predictions.jsonl"
    code = main(["evaluate", str(saved_model), "--tasks", str(synthetic_dir), "--evaluator", "rank", "--instances", "3",
                 "--max-source-length", "96", "--max-target-length", "8", "--predictions-out", str(out), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all({"id", "choice", "options", "scores"} <= set(r) for r in records)

    # The same rows scored directly.
    library = TaskLibrary(synthetic_dir)
    pairs = eval_pairs(library, library.split("default").test_tasks, 3)
    options = [instance_options(i, library.options(t.name, 10)) for t, i in pairs]
    keep = [k for k, o in enumerate(options) if o]
    tokenizer = load_pretrained_tokenizer(str(saved_model))
    rows = build_test_dataset(pairs, "def", tokenizer_truncation(tokenizer, 96), category_to_cluster(DEFAULT_CLUSTERS)).to_dict()
    rows = {column: [values[k] for k in keep] for column, values in rows.items()}
    scores, direct = rank_rows(build_model(str(saved_model), len(tokenizer), 0), tokenizer, rows,
                               [options[k] for k in keep], max_source_length=96, max_target_length=8, batch_size=16)
    assert printed["scores"]["acc"] == scores["acc"]
    flat = [s for r in records for s in r["scores"]]
    assert len(records) == len(direct) and flat == pytest.approx([s for r in direct for s in r["scores"]], abs=1e-4)
    assert set(printed["unscored_tasks"]) == {pairs[k][0].name for k, o in enumerate(options) if not o}


def test_evaluate_refuses_a_preset_name(synthetic_dir, capsys):
    assert main(["evaluate", "t5-tiny", "--tasks", str(synthetic_dir)]) == 2
    assert "is not a saved model" in capsys.readouterr().err
