"""The HTTP layer: one session, timeouts, typed errors, retries with backoff.

Retried: connection errors, read timeouts, 502/503/504 and 429 (waiting ``Retry-After``
when the server sends it, up to ``max_retry_after``). A non-idempotent request (POST) is
retried only where the server cannot have acted on it (the connection was never made, or
the answer was 429/503) -- unless it carries an ``Idempotency-Key``: then the server replays
the first answer to a repeat, so it is retried like a GET (job-creating POSTs send one).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import requests

from lwm_client import __version__
from lwm_client.config import Config
from lwm_client.errors import LwmError, TransientError, error_for_status

RETRY_STATUSES = (429, 502, 503, 504)
SAFE_POST_STATUSES = (429, 503)
IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from this server, fall back to backoff


class Transport:
    """Sends requests to ``config.url`` + ``/api/v1/`` + path and returns parsed JSON or raises.

    Parameters
    ----------
    config : Config
        URL, token and per-request timeout (seconds).
    max_retries : int
        Extra attempts after the first on a transient failure.
    backoff : float
        First backoff in seconds; doubles each attempt (with jitter), capped at ``max_backoff``.
    max_retry_after : float
        A 429 asking to wait longer than this is raised as :class:`RateLimited` at once.
    """

    def __init__(
        self,
        config: Config,
        *,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.max_retries, self.backoff, self.max_backoff, self.max_retry_after = (
            max_retries,
            backoff,
            max_backoff,
            max_retry_after,
        )
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"lwm-client/{__version__}"
        self.session.headers["Accept"] = "application/json"

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return self.config.url + path
        return f"{self.config.url}/api/v1/{path}"

    def _headers(self, auth: bool) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.token}"} if auth and self.config.token else {}

    def _delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)

    def send(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        stream: bool = False,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One request with retries; returns the successful response or raises a typed error.

        ``idempotency_key`` (sent as ``Idempotency-Key``) makes a POST safe to repeat: every
        attempt carries the same key, and the server answers a repeat with the first answer.
        """
        method = method.upper()
        url = self.url(path)
        headers = self._headers(auth)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        retry_as_idempotent = method in IDEMPOTENT or bool(idempotency_key)
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self.session.request(
                    method, url, headers=headers, timeout=self.config.timeout, stream=stream, **kwargs
                )
            except requests.ConnectionError as exc:
                # A refused or reset connection: the request may have been sent if it was reset mid-way.
                never_sent = isinstance(
                    exc, requests.exceptions.ConnectTimeout
                ) or "Connection refused" in str(exc)
                if last or (not retry_as_idempotent and not never_sent):
                    raise TransientError(
                        f"{method} {url}: cannot reach the server: {exc}", code="http:connection"
                    ) from exc
                self.sleep(self._delay(attempt))
                continue
            except requests.Timeout as exc:
                if last or not retry_as_idempotent:
                    raise TransientError(
                        f"{method} {url}: no answer within {self.config.timeout} s", code="http:timeout"
                    ) from exc
                self.sleep(self._delay(attempt))
                continue
            if response.status_code < 400:
                return response
            error = self._error(response)
            retryable = response.status_code in (
                RETRY_STATUSES if retry_as_idempotent else SAFE_POST_STATUSES
            )
            if not retryable or last:
                raise error
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:  # 429, and the 503 service:unavailable of an infrastructure outage
                if retry_after > self.max_retry_after:
                    raise error
                self.sleep(retry_after)
            else:
                self.sleep(self._delay(attempt))
        raise AssertionError("unreachable")  # the loop returns or raises

    @staticmethod
    def _error(response: requests.Response) -> LwmError:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        return error_for_status(
            response.status_code, body, parse_retry_after(response.headers.get("Retry-After"))
        )

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise TransientError(
                f"{method} {path}: the server answered {response.status_code} with non-JSON",
                code="http:not-json",
            ) from exc
