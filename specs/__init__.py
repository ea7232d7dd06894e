"""Pure numerical library of the Learnware Market (no Django, no network, no global state)."""

from specs.exceptions import (
    DimensionMismatchError,
    IncompatibleSpaceError,
    InvalidDataError,
    InvalidParameterError,
    NotFittedError,
    SerializationError,
    SpecError,
)
from specs.kernels import default_gamma, rbf_kernel
from specs.mixture import (
    MixtureResult,
    gram_terms,
    greedy_mixture,
    greedy_on_gram,
    mixture_weights,
    sampling_noise_mmd2,
    simplex_qp,
)
from specs.mixture_bootstrap import MixtureEvidence, mixture_bootstrap_test
from specs.mmd import (
    batch_self_terms,
    cross_terms,
    mmd_squared,
    mmd_squared_batch,
    mmd_to_data,
    self_term,
)
from specs.rkme import RKMESpecification, TableStandardizer, rkme_fit
from specs.serialization import (
    arrays_to_bytes,
    bytes_to_arrays,
    rkme_from_bytes,
    rkme_from_json,
    rkme_to_bytes,
    rkme_to_json,
)
from specs.sketch import RFFSketch

__all__ = [
    "DimensionMismatchError",
    "IncompatibleSpaceError",
    "InvalidDataError",
    "InvalidParameterError",
    "MixtureResult",
    "NotFittedError",
    "RFFSketch",
    "RKMESpecification",
    "SerializationError",
    "SpecError",
    "TableStandardizer",
    "arrays_to_bytes",
    "batch_self_terms",
    "bytes_to_arrays",
    "cross_terms",
    "default_gamma",
    "greedy_mixture",
    "gram_terms",
    "greedy_on_gram",
    "MixtureEvidence",
    "mixture_bootstrap_test",
    "mixture_weights",
    "mmd_squared",
    "mmd_squared_batch",
    "mmd_to_data",
    "rbf_kernel",
    "rkme_fit",
    "rkme_from_bytes",
    "rkme_from_json",
    "rkme_to_bytes",
    "rkme_to_json",
    "sampling_noise_mmd2",
    "self_term",
    "simplex_qp",
]
