"""Task clusters: named sets of categories, modelled on FLAN's clusters.

The default map covers Super-NaturalInstructions' categories and the built-in synthetic
suite (which uses the same category names). A spec may replace it (`data.clusters`).
"""

from __future__ import annotations

from typing import Mapping

from ablate.errors import AblateError

DEFAULT_CLUSTERS: dict[str, tuple[str, ...]] = {
    "nli": ("Textual Entailment",),
    "commonsense": ("Commonsense Classification", "Cause Effect Classification", "Word Semantics",
                    "Word Relation Classification"),
    "closed_book_qa": ("Question Answering", "Answer Verification"),
    "reading_comprehension": ("Answerability Classification", "Information Extraction",
                              "Question Understanding"),
    "sentiment": ("Sentiment Analysis", "Irony Detection", "Stance Detection", "Toxic Language Detection"),
    "paraphrase": ("Paraphrasing", "Text Matching"),
    "summarization": ("Summarization", "Title Generation", "Sentence Compression"),
    "translation": ("Translation",),
    "data_to_text": ("Data to Text",),
    "coreference": ("Coreference Resolution",),
    "struct_to_text": ("Question Generation", "Text Completion", "Fill in The Blank"),
    "program_execution": ("Program Execution", "Mathematics", "Number Conversion"),
    "extraction": ("Keyword Tagging", "Overlap Extraction", "Named Entity Recognition"),
    "text_categorization": ("Text Categorization", "Dialogue Act Recognition", "Intent Identification"),
    "rewriting": ("Question Rewriting", "Grammar Error Correction", "Text Simplification", "Style Transfer"),
    "ordering": ("Sentence Ordering", "Word Analogy"),
}


def category_to_cluster(clusters: Mapping[str, tuple[str, ...] | list[str]]) -> dict[str, str]:
    """Invert a cluster map; a category named by two clusters is an error."""
    owner: dict[str, str] = {}
    for cluster, categories in clusters.items():
        for category in categories:
            if category in owner:
                raise AblateError(f"category '{category}' is in both cluster '{owner[category]}' "
                                  f"and cluster '{cluster}'.", field="data.clusters",
                                  fix="put every category in at most one cluster.")
            owner[category] = cluster
    return owner



def cluster_label(cluster_of: Mapping[str, str], category: str) -> str:
    """The cluster a category belongs to, or the "(no cluster)" group: such tasks are still scored."""
    from ablate.results import NO_CLUSTER

    return cluster_of.get(category, NO_CLUSTER)
