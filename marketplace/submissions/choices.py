"""Choices of the submissions app: data formats, pipeline stages, assembly methods."""

from django.db import models


class DataFormat(models.TextChoices):
    CSV = "csv", "CSV table"
    NPZ = "npz", "NumPy NPZ (arrays X, optional y)"
    JSONL = "jsonl", "JSON lines (text)"
    RKME = "rkme", "RKME computed by the client"
    IMAGES = "images", "Zip of PNG/JPEG images"


class Stage(models.TextChoices):
    SPEC = "spec", "Specify the user's data"
    IDENTIFY = "identify", "Identify learnwares"
    RANK = "rank", "Rank on the labelled sample"
    ASSEMBLE = "assemble", "Assemble"
    EVALUATE = "evaluate", "Evaluate on held-out rows"
    PACKAGE = "package", "Package"


# Order of the pipeline; each stage's result is stored under results[stage].
STAGES: tuple[str, ...] = tuple(Stage.values)


class AssemblyMethod(models.TextChoices):
    BEST_SINGLE = "best_single", "Best single learnware"
    WEIGHTED_ENSEMBLE = "weighted_ensemble", "Weighted ensemble"
    RKME_JOB_SELECTOR = "rkme_job_selector", "Job selector (zero-shot, by RKME)"
    RKME_SOFT_SELECTOR = "rkme_soft_selector", "Soft job selector (zero-shot, outputs weighted by RKME)"
    TRAINED_JOB_SELECTOR = "trained_job_selector", "Job selector (trained on the labelled sample)"
    STITCHING_HEAD = "stitching_head", "Stitching / feature-augmentation head"
    LORA_WEIGHTED_SUM = "lora_weighted_sum", "LoRA arithmetic (weighted sum, negation)"
    LORA_TIES = "lora_ties", "LoRA arithmetic (TIES merge)"
    ARROW_ROUTING = "arrow_routing", "Arrow routing over LoRA adapters"


# Simpler methods first: on a tied validation score the simpler one is chosen.
METHOD_ORDER: tuple[str, ...] = tuple(AssemblyMethod.values)
