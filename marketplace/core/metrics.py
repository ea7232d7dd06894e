"""Prometheus metrics of the web and worker processes, and the protected ``/metrics`` view.

Every metric is defined here, so the names and labels are in one place (docs/operations.md
lists them). Updating one is an in-memory (or, in multiprocess mode, an mmap) write, never
a query: the request path stays cheap. What must be read from elsewhere (queue depth) is
read when ``/metrics`` is scraped.

Multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set): gunicorn's and Celery's processes each
write their own file in the folder and ``/metrics`` adds them up. Files are named by
host and pid, so web and worker containers may share one volume without two processes
(pid 7 in two containers) writing the same file. Counters of a process that exited stay
counted (totals never go backwards); no gauge depends on a live process.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import socket
import time
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import values as prometheus_values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


def _process_identifier() -> str:
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:60]
    return f"{host}-{os.getpid()}"


def _multiprocess_dir() -> str:
    return settings.PROMETHEUS_MULTIPROC_DIR


# Chosen once per process, before any metric exists (prometheus-client binds each metric's storage
# when it is created); prometheus-client itself reads the same variable from the environment.
if _multiprocess_dir():
    os.makedirs(_multiprocess_dir(), exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _multiprocess_dir()
    prometheus_values.ValueClass = prometheus_values.MultiProcessValue(_process_identifier)

disable_created_metrics()  # no *_created series: half the series, and nothing our alerts read
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_STAGE_SECONDS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

HTTP_REQUESTS = Counter(
    "lwm_http_requests_total",
    "HTTP requests answered, by route name, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "lwm_http_request_duration_seconds",
    "Time to answer a request, by route name and method.",
    ["route", "method"],
    buckets=_SECONDS,
)
JOBS_CREATED = Counter(
    "lwm_jobs_created_total", "Jobs created (publish, submission, search), by kind.", ["kind"]
)
JOBS_FINISHED = Counter(
    "lwm_jobs_finished_total", "Jobs that reached a final state, by task and status.", ["task", "status"]
)
JOB_REJECTIONS = Counter(
    "lwm_job_rejections_total",
    "Jobs rejected for the user's input, by task and error code.",
    ["task", "code"],
)
STAGE_SECONDS = Histogram(
    "lwm_job_stage_duration_seconds",
    "Time a job spent in one stage, by task, stage and outcome.",
    ["task", "stage", "outcome"],
    buckets=_STAGE_SECONDS,
)
SANDBOX_CALLS = Counter(
    "lwm_sandbox_calls_total",
    "Calls of uploaded code in the sandbox, by artefact kind and outcome.",
    ["kind", "outcome"],
)
SANDBOX_SECONDS = Histogram(
    "lwm_sandbox_call_duration_seconds",
    "Time of one sandbox call, by artefact kind.",
    ["kind"],
    buckets=_STAGE_SECONDS,
)
SEARCH_SECONDS = Histogram(
    "lwm_search_duration_seconds",
    "Time of one search, by kind (data: RKME, text: cards).",
    ["kind"],
    buckets=_SECONDS,
)
INDEX_ENTRIES = Gauge(
    "lwm_index_entries",
    "Entries in a search index, as last synced by any process.",
    ["index"],
    multiprocess_mode="mostrecent",
)


def observe_request(*, method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_SECONDS.labels(route, method).observe(seconds)


class QueueDepthCollector(Collector):
    """``lwm_queue_depth{queue}``: messages waiting in each broker queue, read when scraped.

    A passive queue declaration is one cheap broker round trip per queue (Redis ``LLEN``,
    AMQP ``queue.declare``, a directory listing for the filesystem transport).
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("lwm_queue_depth", "Messages waiting in a broker queue.", labels=["queue"])
        up = GaugeMetricFamily("lwm_broker_up", "1 when the broker answered the queue-depth read, else 0.")
        try:
            for queue, count in queue_depths().items():
                depth.add_metric([queue], count)
            up.add_metric([], 1)
        except Exception as exc:  # noqa: BLE001 - a scrape must answer while the broker is down
            logger.warning("queue depth unavailable: %s: %s", type(exc).__name__, exc)
            up.add_metric([], 0)
        yield depth
        yield up


def queue_depths() -> dict[str, int]:
    from workers.celery import app

    queues = sorted({settings.CELERY_TASK_DEFAULT_QUEUE, "compute"})
    with app.connection_for_read(connect_timeout=settings.LWM_BROKER_PUBLISH_TIMEOUT) as connection:
        channel = connection.default_channel
        out = {}
        for queue in queues:
            try:
                # kombu's concrete channels declare queues; the stubs type only the abstract StdChannel.
                declared = channel.queue_declare(queue=queue, passive=True)  # type: ignore[attr-defined]
                out[queue] = int(declared.message_count)
            except connection.channel_errors:
                out[queue] = 0  # not declared yet: nothing was ever sent to it
                channel = connection.channel()
        return out


_QUEUE_COLLECTOR = QueueDepthCollector()


def _registry() -> CollectorRegistry:
    if not _multiprocess_dir():
        if _QUEUE_COLLECTOR not in REGISTRY._collector_to_names:  # noqa: SLF001 - register once per process
            REGISTRY.register(_QUEUE_COLLECTOR)
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=_multiprocess_dir())
    registry.register(_QUEUE_COLLECTOR)
    return registry


def may_scrape(request: HttpRequest) -> bool:
    """A bearer ``LWM_METRICS_TOKEN`` or a client address inside ``LWM_METRICS_ALLOWED_IPS``."""
    token = settings.LWM_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if (
        token
        and given.startswith("Bearer ")
        and hmac.compare_digest(given[7:].strip().encode(), token.encode())
    ):
        return True
    if settings.LWM_METRICS_ALLOWED_IPS:
        from marketplace.core.client_ip import client_ip

        try:
            address = ipaddress.ip_address(client_ip(request.META))
        except ValueError:
            return False
        return any(
            address in ipaddress.ip_network(net, strict=False) for net in settings.LWM_METRICS_ALLOWED_IPS
        )
    return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: the Prometheus text format, for allowed scrapers only (403 otherwise)."""
    from marketplace.core.request_id import with_request_id

    if not may_scrape(request):
        body = {
            "error": {
                "code": "metrics:user:forbidden",
                "details": {},
                "message": "metrics need 'Authorization: Bearer <LWM_METRICS_TOKEN>' or an allowed address",
            }
        }
        return JsonResponse(with_request_id(body), status=403)
    started = time.perf_counter()
    output = generate_latest(_registry())
    logger.debug("metrics scraped in %.3fs", time.perf_counter() - started)
    return HttpResponse(output, content_type=CONTENT_TYPE_LATEST)
