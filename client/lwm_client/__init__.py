"""Python client of the Learnware Market: local RKME, packages, publish, search, submit, download, predict.

>>> from lwm_client import Client
>>> lwm = Client()                       # LWM_URL / LWM_TOKEN, or the file `lwm login` wrote
>>> spec = lwm.spec_table("my-data.csv")  # computed here: the rows never leave the machine
>>> hits = lwm.search_by_data(spec)
"""

__version__ = "0.1.0"

from lwm_client.client import Client  # noqa: E402
from lwm_client.errors import (  # noqa: E402
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    IntegrityError,
    JobFailed,
    LwmError,
    NotFound,
    PackageError,
    RateLimited,
    RejectedUpload,
    ServerError,
    TransientError,
    Unauthorized,
    UnsafeArtifactError,
)

__all__ = [
    "BadRequest",
    "Client",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "IntegrityError",
    "JobFailed",
    "LwmError",
    "NotFound",
    "PackageError",
    "RateLimited",
    "RejectedUpload",
    "ServerError",
    "TransientError",
    "Unauthorized",
    "UnsafeArtifactError",
    "__version__",
]
