"""Celery workers: thin tasks that call pipelines; pipelines orchestrate specs and services."""
