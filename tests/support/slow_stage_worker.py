"""A test-only Celery app: the product's app, with each progress report of one stage followed by a pause.

Fault tests kill or cancel a worker *inside* a stage; real stages on test data finish in
milliseconds, so they widen the window here instead of through a hook in product code. Start it
with ``WorkerProcess(app="tests.support.slow_stage_worker")`` and set ``LWM_TEST_SLOW_STAGE``
(the stage, e.g. ``rank``) and ``LWM_TEST_SLOW_STAGE_SECONDS`` in the worker's environment.

The pause follows ``workers.base.job_progress``, through which every stage's ``report(stage, ...)``
goes, so the job row already shows the stage as running while the worker sleeps in it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery.signals import task_prerun

from workers.celery import app

__all__ = ["app"]

_PATCHED = {"done": False}


@task_prerun.connect
def _slow_down_one_stage(**_: Any) -> None:
    # On the first task, in the process that runs it: Django is set up by then, so workers.base imports.
    if _PATCHED["done"]:
        return
    import workers.base

    slow_stage = os.environ["LWM_TEST_SLOW_STAGE"]
    seconds = float(os.environ["LWM_TEST_SLOW_STAGE_SECONDS"])
    report_progress = workers.base.job_progress

    def job_progress_then_pause(*, stage: str, **kwargs: Any) -> Any:
        result = report_progress(stage=stage, **kwargs)
        if stage == slow_stage:
            time.sleep(seconds)
        return result

    workers.base.job_progress = job_progress_then_pause
    _PATCHED["done"] = True
