"""Task modules; importing this package registers every task with the Celery app."""

from workers import heartbeat  # noqa: F401  (connects the worker liveness signals)
from workers.sandbox import startup  # noqa: F401  (logs the sandbox's isolation at worker start)
from workers.tasks import (
    maintenance,  # noqa: F401
    publish,  # noqa: F401
    search,  # noqa: F401
    submissions,  # noqa: F401
)
