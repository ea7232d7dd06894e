"""Assembly methods: combine learnwares into one module for the user's task."""

from specs.assembly._base import Assembly
from specs.assembly.arrow import ArrowRouter, arrow_prototypes, arrow_routing_weights
from specs.assembly.ensemble import BestSingle, WeightedEnsemble
from specs.assembly.lora import (
    LoRAAdapter,
    check_compatible,
    lora_negate,
    lora_ties,
    lora_weighted_sum,
    refactor,
    ties_merge,
)
from specs.assembly.selector import RKMEJobSelector, RKMESoftSelector, TrainedJobSelector
from specs.assembly.stitching import StitchingHead

__all__ = [
    "ArrowRouter",
    "Assembly",
    "BestSingle",
    "LoRAAdapter",
    "RKMEJobSelector",
    "RKMESoftSelector",
    "StitchingHead",
    "TrainedJobSelector",
    "WeightedEnsemble",
    "arrow_prototypes",
    "arrow_routing_weights",
    "check_compatible",
    "lora_negate",
    "lora_ties",
    "lora_weighted_sum",
    "refactor",
    "ties_merge",
]
