"""Allowed manifest values as plain tuples, so the checks need no Django.

``marketplace.learnwares.choices`` holds the same values as Django ``TextChoices``;
``tests/specs/test_packaging_choices.py`` asserts the two lists stay identical.
"""

from __future__ import annotations

KINDS = ("model", "adapter", "base_model")
MODALITIES = ("table", "image", "text")
TASKS = ("classification", "regression", "embedding")
VISIBILITIES = ("public", "private", "organization")
ARTIFACT_FORMATS = ("torchscript", "torch_export", "peft_lora", "assembly", "onnx", "hf_safetensors")
# How a base model turns token states into one text embedding (``pooling`` in its manifest).
POOLINGS = ("mean", "cls")
# The names a manifest may give the market's own text encoder (its registry key and aliases): naming it is
# naming the default text space; any other base_model names a published base model.
MINILM_NAMES = ("all-minilm-l6-v2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
