"""The local folders a process needs, made when Django starts (CoreConfig.ready), never at settings import.

Importing settings has no side effects, so ``manage.py check`` or a test that only reads a setting
creates nothing; every process that serves or works (web, worker, beat, management commands) runs
``ready()`` first and finds its folders there.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def ensure_local_folders() -> None:
    # VAR_DIR holds the SQLite database, media and the broker's files: the service account only.
    Path(settings.VAR_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    folders = [Path(settings.STATIC_ROOT)]  # whitenoise warns on a missing folder
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        # kombu's filesystem transport expects its folders to exist before the first message.
        folders += [
            Path(str(options[key]))
            for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
        ]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
