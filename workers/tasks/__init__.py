"""Task modules; importing this package registers every task with the Celery app."""

from workers import heartbeat  # noqa: F401  (connects the worker liveness signals)
from workers.tasks import maintenance  # noqa: F401
from workers.tasks import publish  # noqa: F401
from workers.tasks import search  # noqa: F401
from workers.tasks import submissions  # noqa: F401
