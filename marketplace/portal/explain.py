"""One name and one plain explanation for every number and method the portal shows.

Pages, the API docs and docs/ use these names; a number on a page carries its explanation as
a tooltip (``<abbr title>``) and, where it matters for a decision, as a visible line.
"""

from __future__ import annotations

SCORES: dict[str, tuple[str, str]] = {
    "mmd2": (
        "MMD²",
        "Squared maximum mean discrepancy between your data and the learnware's training data, "
        "from their specifications: 0 means identically distributed; lower is closer.",
    ),
    "neg_mmd2": ("−MMD²", "MMD² with its sign flipped so that higher is better, as the ranking combines it."),
    "sketch_distance": (
        "Sketch estimate",
        "A fast approximation of MMD² from random-feature sketches, used to "
        "shortlist candidates before the exact MMD² is computed.",
    ),
    "mixture_weight": (
        "Mixture weight",
        "The share of your data best explained by this learnware's training "
        "data (weights of the suggested mixture sum to 1).",
    ),
    "logme": (
        "LogME",
        "Log marginal evidence of a Bayesian linear model fitted on the learnware's outputs for "
        "your labels: higher means its outputs transfer better to your task.",
    ),
    "hscore": (
        "H-score",
        "Regularised H-score of the learnware's outputs for your labels: how well they separate "
        "your classes (higher is better).",
    ),
    "knn": (
        "kNN accuracy",
        "Leave-one-out 3-nearest-neighbour accuracy on the learnware's outputs for your "
        "labelled rows (0–1, higher is better).",
    ),
    "accuracy": ("Accuracy", "Share of held-out rows predicted correctly (0–1, higher is better)."),
    "r2": (
        "R²",
        "Coefficient of determination on held-out rows: 1 is perfect, 0 is no better than the mean.",
    ),
    "cv_score": (
        "CV score",
        "Cross-validated score on your labelled rows: the mean over folds of the model "
        "trained on the other folds.",
    ),
    "combined": (
        "Combined",
        "Each score rescaled to 0–1 across the candidates (min–max), then averaged with "
        "fixed weights; it orders the candidates, it is not a probability.",
    ),
    "similarity": (
        "Match",
        "Cosine similarity of your words and the card (MiniLM embeddings): 1 is the same "
        "meaning; cards under the relevance cut-off are not shown.",
    ),
}

SCRATCH_MODELS = {
    "logistic_regression": "Logistic regression",
    "mlp": "Small neural network (MLP)",
    "ridge": "Ridge regression",
}


def score_name(key: str) -> str:
    return SCORES.get(key, (key, ""))[0]


def score_help(key: str) -> str:
    return SCORES.get(key, ("", ""))[1]


def method_label(key: str) -> str:
    """The one display name of an assembly method or a from-scratch baseline model."""
    from marketplace.submissions.choices import AssemblyMethod

    if key in AssemblyMethod.values:
        return str(AssemblyMethod(key).label)
    if key in SCRATCH_MODELS:
        return f"{SCRATCH_MODELS[key]}, trained from scratch"
    if key == "label_free":  # the assemble stage's row for what would be delivered without labels
        return "The label-free choice"
    return key
