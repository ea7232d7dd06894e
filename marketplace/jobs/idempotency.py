"""``Idempotency-Key`` for job-creating POSTs (uploads, submissions): a retried request with the
same key replays the first answer instead of creating a second version or submission."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.accounts.request_user import request_user
from marketplace.core.exceptions import Conflict, ValidationFailed
from marketplace.jobs.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.fingerprint and fingerprint and record.fingerprint != fingerprint:
        raise Conflict(
            f"{HEADER} {record.key!r} was already used for a different request",
            code="request:user:idempotency-key-reused",
            details={"key": record.key},
        )
    response = Response(record.body, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(
    request: Request, *, scope: str, fingerprint: str = "", create: Callable[[], Response]
) -> Response:
    """Run ``create`` once per (user, scope, key); without the header it simply runs.

    The key row and everything ``create`` writes commit together; a concurrent duplicate waits
    on the unique key, then replays. Errors are not recorded, so a failed request can be retried.
    """
    key = request.headers.get(HEADER, "").strip()
    if not key:
        return create()
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            f"{HEADER}: at most {MAX_KEY_LENGTH} printable characters",
            code="request:user:bad-idempotency-key",
        )
    owner = request_user(request)
    existing = IdempotencyRecord.objects.filter(owner=owner, scope=scope, key=key).first()
    if existing is not None:
        return _replay(existing, fingerprint)
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                owner=owner, scope=scope, key=key, fingerprint=fingerprint
            )
            response = create()
            body: Any = json.loads(json.dumps(response.data, cls=DjangoJSONEncoder))
            IdempotencyRecord.objects.filter(id=record.id).update(status_code=response.status_code, body=body)
    except IntegrityError:
        # A concurrent request with the same key committed first.
        winner = IdempotencyRecord.objects.filter(owner=owner, scope=scope, key=key).first()
        if winner is None:
            raise
        return _replay(winner, fingerprint)
    return response
