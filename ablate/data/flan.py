"""FLAN's protocol for real data: its 12 task clusters over Super-NaturalInstructions categories,
the clusters it excludes together, its clusters-ablation order, and leave-one-cluster-out.

FLAN (Wei et al. 2022, "Finetuned Language Models Are Zero-Shot Learners"; google-research/FLAN
`flan/task_splits.py`) groups its 62 datasets into 12 clusters (its Figure 3) and evaluates a
cluster zero-shot with a model trained on every other cluster. SuperNI has no FLAN datasets, so
the map below places each of SuperNI's 76 categories (ablate.data.clusters.SUPERNI_CATEGORIES)
in the FLAN cluster whose datasets it resembles most; what FLAN keeps in "misc" (conversational
QA, question classification, acceptability, word sense, math, punctuation and casing) and the
categories no FLAN dataset resembles go to `misc`.

| FLAN cluster                   | FLAN's datasets (examples)          | SuperNI categories                            |
|--------------------------------|-------------------------------------|-----------------------------------------------|
| nli                            | ANLI, RTE, CB, MNLI, QNLI, SNLI     | Textual Entailment                            |
| commonsense                    | COPA, HellaSwag, PiQA, StoryCloze   | Commonsense Classification, Cause Effect      |
|                                |                                     | Classification, Text Completion               |
| sentiment                      | IMDB, Sent140, SST-2, Yelp          | Sentiment Analysis, Irony Detection, Stance   |
|                                |                                     | Detection                                     |
| paraphrase                     | MRPC, QQP, PAWS, STS-B              | Paraphrasing, Text Matching                   |
| closed_book_qa                 | ARC, NQ, TriviaQA                   | Question Answering, Fact Verification         |
| struct_to_text                 | CommonGen, DART, E2ENLG, WEBNLG     | Data to Text                                  |
| translation                    | WMT, ParaCrawl                      | Translation                                   |
| reading_comp                   | BoolQ, DROP, MultiRC, SQuAD, OBQA   | Answerability Classification, Answer          |
|                                |                                     | Verification, Information Extraction         |
| reading_comp_with_commonsense  | CosmosQA, ReCoRD                    | Fill in The Blank                             |
| coreference                    | DPR, Winogrande, WSC                | Coreference Resolution                        |
| summarization                  | CNN-DM, XSum, Gigaword, AESLC, ...  | Summarization, Title Generation, Sentence     |
|                                |                                     | Compression                                   |
| misc                           | CoQA, QuAC, TREC, CoLA, WiC, math,  | the other 55 categories (FLAN_CLUSTERS["misc"])|
|                                | punctuation, word segmentation      |                                               |

SuperNI's "Question Answering" mixes closed-book and passage-based questions; it sits in
closed_book_qa, the cluster FLAN's ablation holds out. The built-in synthetic suite uses 11 of
these categories and so fills nli, commonsense, sentiment, paraphrase, closed_book_qa,
translation, reading_comp, coreference, summarization and misc (not struct_to_text nor
reading_comp_with_commonsense).

Exclusions (task_splits.py `generate_inter_cluster_splits`): holding out paraphrase also leaves out
nli and the reverse; holding out reading_comp or commonsense leaves out
reading_comp_with_commonsense, which in turn leaves out both (reading_comp and commonsense do not
exclude each other). As groups of clusters excluded together: FLAN_EXCLUSIONS.

The clusters ablation (task_splits.py `generate_inter_ablation`) holds out nli, commonsense and
closed_book_qa and adds training clusters in the order summarization, translation,
reading comprehension, sentiment, data-to-text, coreference, conversational QA: FLAN_ABLATION_ORDER,
with conversational QA as `misc` (FLAN's 12-cluster map keeps CoQA and QuAC there).
"""

from __future__ import annotations

from collections.abc import Sequence

from ablate.data.clusters import DEFAULT_CLUSTERS, SUPERNI_CATEGORIES
from ablate.errors import AblateError, did_you_mean

_NAMED: dict[str, tuple[str, ...]] = {
    "nli": ("Textual Entailment",),
    "commonsense": ("Commonsense Classification", "Cause Effect Classification", "Text Completion"),
    "sentiment": ("Sentiment Analysis", "Irony Detection", "Stance Detection"),
    "paraphrase": ("Paraphrasing", "Text Matching"),
    "closed_book_qa": ("Question Answering", "Fact Verification"),
    "struct_to_text": ("Data to Text",),
    "translation": ("Translation",),
    "reading_comp": ("Answerability Classification", "Answer Verification", "Information Extraction"),
    "reading_comp_with_commonsense": ("Fill in The Blank",),
    "coreference": ("Coreference Resolution",),
    "summarization": ("Summarization", "Title Generation", "Sentence Compression"),
}
# FLAN's 12 clusters in its Figure 3 order; every SuperNI category is in exactly one.
FLAN_CLUSTERS: dict[str, tuple[str, ...]] = {
    **{name: _NAMED[name] for name in ("nli", "commonsense", "sentiment", "paraphrase", "closed_book_qa",
                                       "struct_to_text", "translation", "reading_comp",
                                       "reading_comp_with_commonsense", "coreference")},
    "misc": tuple(c for c in SUPERNI_CATEGORIES if not any(c in cats for cats in _NAMED.values())),
    "summarization": _NAMED["summarization"],
}
# Clusters excluded together: holding out one leaves every other member of its groups out of training.
FLAN_EXCLUSIONS: tuple[tuple[str, ...], ...] = (
    ("nli", "paraphrase"),
    ("reading_comp", "reading_comp_with_commonsense"),
    ("commonsense", "reading_comp_with_commonsense"),
)
FLAN_ABLATION_HELD_OUT: tuple[str, ...] = ("nli", "commonsense", "closed_book_qa")
FLAN_ABLATION_ORDER: tuple[str, ...] = ("summarization", "translation", "reading_comp", "sentiment",
                                        "struct_to_text", "coreference", "misc")

# Named presets, by kind: what a spec names instead of writing the lists out.
PRESETS: dict[str, dict[str, object]] = {
    "clusters": {"default": DEFAULT_CLUSTERS, "flan": FLAN_CLUSTERS},
    "exclusions": {"flan": FLAN_EXCLUSIONS},
    "held_out": {"flan": FLAN_ABLATION_HELD_OUT},
    "order": {"flan": FLAN_ABLATION_ORDER},
}


def preset(kind: str, name: str, field: str | None = None):
    """The preset `name` of `kind` (clusters, exclusions, held_out, order); unknown names are errors."""
    known = PRESETS[kind]
    if name not in known:
        raise AblateError(f"unknown {kind} preset '{name}'. {did_you_mean(name, list(known))}", field=field,
                          fix=f"use one of: {', '.join(known)}, or write the {kind} out.")
    return known[name]


def excluded_with(cluster: str, exclusion_groups: Sequence[Sequence[str]]) -> list[str]:
    """The clusters left out of training when `cluster` is held out: the other members of its groups."""
    found: dict[str, None] = {}
    for group in exclusion_groups:
        if cluster in group:
            found.update((other, None) for other in group if other != cluster)
    return list(found)


def loo_values(clusters: Sequence[str], exclusion_groups: Sequence[Sequence[str]] = (), *,
               universe: Sequence[str] | None = None,
               field: str = "leave_one_cluster_out") -> list[tuple[str, list[str]]]:
    """Leave-one-cluster-out: for each cluster of `clusters`, in order, (that cluster, the clusters
    to train on): every cluster of `universe` (default: `clusters`) but it and those excluded with
    it (`excluded_with`), in universe order.

        loo_values(["nli", "paraphrase", "sentiment"], [("nli", "paraphrase")])
        -> [("nli", ["sentiment"]), ("paraphrase", ["sentiment"]), ("sentiment", ["nli", "paraphrase"])]
    """
    universe = list(clusters if universe is None else universe)
    fix_names = f"name clusters of the map: {', '.join(universe)}."
    if not clusters:
        raise AblateError("no clusters to hold out.", field=field, fix="list at least one cluster.")
    for names, what in ((clusters, "held-out clusters"), (universe, "clusters")):
        repeated = sorted({c for c in names if list(names).count(c) > 1})
        if repeated:
            raise AblateError(f"cluster '{repeated[0]}' appears twice in the {what}.", field=field,
                              fix="list each cluster once.")
    for cluster in clusters:
        if cluster not in universe:
            raise AblateError(f"cluster '{cluster}' is not a cluster of the map. {did_you_mean(cluster, universe)}",
                              field=field, fix=fix_names)
    for i, group in enumerate(exclusion_groups):
        if len(set(group)) < 2:
            raise AblateError(f"exclusion group {i + 1} ({', '.join(group) or 'empty'}) names fewer than two "
                              "clusters.", field=field, fix="a group lists two or more clusters excluded together.")
        for cluster in group:
            if cluster not in universe:
                raise AblateError(f"exclusion group {i + 1} names cluster '{cluster}', which is not a cluster of "
                                  f"the map. {did_you_mean(cluster, universe)}", field=field, fix=fix_names)
    values = []
    for cluster in clusters:
        left_out = {cluster, *excluded_with(cluster, exclusion_groups)}
        train = [c for c in universe if c not in left_out]
        if not train:
            raise AblateError(f"holding out cluster '{cluster}' leaves no cluster to train on.", field=field,
                              fix="add clusters to train on, or exclude fewer with it.")
        values.append((cluster, train))
    return values
