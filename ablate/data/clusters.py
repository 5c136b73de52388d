"""Task clusters: named sets of categories, modelled on FLAN's clusters.

The default map covers every category of the Super-NaturalInstructions v2 release and the
built-in synthetic suite (which uses the same category names). A spec may replace it
(`data.clusters`). A task whose category no cluster names is still scored, under "(no cluster)".
"""

from __future__ import annotations

from typing import Mapping

from ablate.errors import AblateError

# FLAN's clusters where FLAN names one (nli, commonsense, closed_book_qa, reading_comprehension,
# sentiment, paraphrase, summarization, translation, data_to_text / struct_to_text, coreference,
# misc), and clusters of ablate's own for the Super-NaturalInstructions categories FLAN has no
# cluster for. Every category of the SuperNI v2 release (SUPERNI_CATEGORIES) is in one cluster.
DEFAULT_CLUSTERS: dict[str, tuple[str, ...]] = {
    "nli": ("Textual Entailment",),
    "commonsense": ("Commonsense Classification", "Cause Effect Classification", "Word Semantics",
                    "Word Relation Classification"),
    "closed_book_qa": ("Question Answering", "Answer Verification", "Fact Verification"),
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
    "extraction": ("Keyword Tagging", "Overlap Extraction", "Named Entity Recognition",
                   "Entity Relation Classification"),
    "text_categorization": ("Text Categorization", "Dialogue Act Recognition", "Intent Identification",
                            "Ethics Classification", "Gender Classification", "Stereotype Detection",
                            "Spam Classification", "Section Classification", "Coherence Classification",
                            "Text Quality Evaluation", "Paper Review"),
    "rewriting": ("Question Rewriting", "Grammar Error Correction", "Text Simplification", "Style Transfer",
                  "Question Decomposition"),
    "ordering": ("Sentence Ordering", "Word Analogy"),
    "dialogue": ("Dialogue Generation", "Dialogue State Tracking", "Speaker Identification",
                 "Speaker Relation Classification", "Negotiation Strategy Detection"),
    "discourse": ("Discourse Connective Identification", "Discourse Relation Classification"),
    "linguistics": ("Pos Tagging", "Linguistic Probing", "Preposition Prediction", "Grammar Error Detection",
                    "Spelling Error Detection", "Punctuation Error Detection", "Language Identification"),
    "composition": ("Sentence Composition", "Story Composition", "Poem Generation", "Sentence Expansion",
                    "Entity Generation", "Wrong Candidate Generation", "Sentence Perturbation", "Explanation"),
    "code": ("Code to Text", "Text to Code"),
    "misc": ("Misc.",),
}

# The 76 task categories of the Super-NaturalInstructions v2 release (tasks/*.json "Categories").
SUPERNI_CATEGORIES: tuple[str, ...] = (
    "Answer Verification", "Answerability Classification", "Cause Effect Classification", "Code to Text",
    "Coherence Classification", "Commonsense Classification", "Coreference Resolution", "Data to Text",
    "Dialogue Act Recognition", "Dialogue Generation", "Dialogue State Tracking",
    "Discourse Connective Identification", "Discourse Relation Classification", "Entity Generation",
    "Entity Relation Classification", "Ethics Classification", "Explanation", "Fact Verification",
    "Fill in The Blank", "Gender Classification", "Grammar Error Correction", "Grammar Error Detection",
    "Information Extraction", "Intent Identification", "Irony Detection", "Keyword Tagging",
    "Language Identification", "Linguistic Probing", "Mathematics", "Misc.", "Named Entity Recognition",
    "Negotiation Strategy Detection", "Number Conversion", "Overlap Extraction", "Paper Review", "Paraphrasing",
    "Poem Generation", "Pos Tagging", "Preposition Prediction", "Program Execution", "Punctuation Error Detection",
    "Question Answering", "Question Decomposition", "Question Generation", "Question Rewriting",
    "Question Understanding", "Section Classification", "Sentence Composition", "Sentence Compression",
    "Sentence Expansion", "Sentence Ordering", "Sentence Perturbation", "Sentiment Analysis", "Spam Classification",
    "Speaker Identification", "Speaker Relation Classification", "Spelling Error Detection", "Stance Detection",
    "Stereotype Detection", "Story Composition", "Style Transfer", "Summarization", "Text Categorization",
    "Text Completion", "Text Matching", "Text Quality Evaluation", "Text Simplification", "Text to Code",
    "Textual Entailment", "Title Generation", "Toxic Language Detection", "Translation", "Word Analogy",
    "Word Relation Classification", "Word Semantics", "Wrong Candidate Generation",
)


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
