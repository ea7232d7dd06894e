"""Size limits applied to portal uploads before their bytes are read.

``limited_upload(limit)`` wraps a view: a request whose Content-Length is over the
limit is answered 413 without touching its body, and an upload handler stops a body
that turns out larger than announced (chunked or lying clients) while it streams in.
The wrapped view keeps its CSRF check: it runs after the limit is installed, because
the CSRF middleware would otherwise parse the multipart body first.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

# Room for the multipart boundaries and the small form fields around the file(s).
FORM_OVERHEAD = 64 * 1024


class UploadTooLarge(Exception):
    pass


class SizeLimitHandler(FileUploadHandler):
    """Counts the bytes of all files of a request and stops the upload past ``limit``."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.seen = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.seen += len(raw_data)
        if self.seen > self.limit:
            self.request.upload_too_large = True  # type: ignore[union-attr]  # a flag the view reads; set only here
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def too_large(request: HttpRequest, limit: int) -> HttpResponse:
    detail = f"Uploads are limited to {limit / 2**20:.1f} MB."
    return render(
        request, "portal/error.html", {"code": 413, "title": "File too large", "detail": detail}, status=413
    )


def limited_upload(
    limit_of: Callable[[], int],
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a view taking uploads; ``limit_of()`` gives the byte limit per request."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        protected = csrf_protect(view)

        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "POST":
                limit = limit_of()
                try:
                    announced = int(request.META.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    announced = 0
                if announced > limit + FORM_OVERHEAD:
                    return too_large(request, limit)
                request.upload_handlers.insert(0, SizeLimitHandler(request, limit))
            response = protected(request, *args, **kwargs)
            if getattr(request, "upload_too_large", False):
                return too_large(request, limit_of())
            return response

        return wrapper

    return decorate
