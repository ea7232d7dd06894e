from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.core.exceptions import Conflict, NotFound
from marketplace.jobs.choices import JobStatus
from marketplace.jobs.models import Job
from marketplace.jobs.services import (
    Claim,
    JobCancelled,
    job_cancel,
    job_claim,
    job_create,
    job_finish,
    job_progress,
    jobs_reap_stale,
)

pytestmark = pytest.mark.django_db


def test_a_pending_job_is_claimed_once():
    job = job_create(kind="test")
    assert job_claim(job_id=job.id, worker="w1") is Claim.CLAIMED
    assert job_claim(job_id=job.id, worker="w2") is Claim.BUSY
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempts) == (JobStatus.RUNNING, "w1", 1)


def test_a_running_job_with_a_stale_heartbeat_is_taken_over(settings):
    job = job_create(kind="test")
    job_claim(job_id=job.id, worker="dead")
    Job.objects.filter(id=job.id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.LWM_WORKER_STALE_SECONDS + 1)
    )
    assert job_claim(job_id=job.id, worker="alive") is Claim.CLAIMED
    job.refresh_from_db()
    assert (job.worker, job.attempts) == ("alive", 2)


def test_a_finished_job_is_not_run_again():
    job = job_create(kind="test")
    job_claim(job_id=job.id, worker="w1")
    assert job_finish(job_id=job.id, status=JobStatus.SUCCEEDED, result={"x": 1})
    assert job_claim(job_id=job.id, worker="w2") is Claim.FINISHED
    assert not job_finish(job_id=job.id, status=JobStatus.FAILED)
    job.refresh_from_db()
    assert (job.status, job.progress, job.result) == (JobStatus.SUCCEEDED, 100, {"x": 1})


def test_progress_is_clamped_logged_and_stops_a_cancelled_job(alice):
    job = job_create(kind="test", owner=alice)
    job_claim(job_id=job.id, worker="w1")
    job_progress(job_id=job.id, stage="rank", progress=140, message="scoring")
    job.refresh_from_db()
    assert (job.stage, job.progress) == ("rank", 100)
    assert job.log[-1]["stage"] == "rank" and job.log[-1]["message"] == "scoring"
    job_cancel(job_id=job.id, user=alice)
    with pytest.raises(JobCancelled):
        job_progress(job_id=job.id, stage="assemble", progress=50)


def test_cancelling_a_pending_job_finishes_it_and_only_the_owner_may(alice, bob):
    job = job_create(kind="test", owner=alice)
    with pytest.raises(NotFound):
        job_cancel(job_id=job.id, user=bob)
    assert job_cancel(job_id=job.id, user=alice).status == JobStatus.CANCELLED
    with pytest.raises(Conflict):
        job_cancel(job_id=job.id, user=alice)


def test_the_reaper_fails_only_stale_running_jobs():
    fresh, stale, pending = (job_create(kind="test") for _ in range(3))
    job_claim(job_id=fresh.id, worker="w")
    job_claim(job_id=stale.id, worker="w")
    Job.objects.filter(id=stale.id).update(heartbeat_at=timezone.now() - timedelta(hours=2))
    assert jobs_reap_stale(older_than_seconds=3600) == 1
    statuses = dict(Job.objects.values_list("id", "status"))
    assert statuses[stale.id] == JobStatus.FAILED
    assert statuses[fresh.id] == JobStatus.RUNNING
    assert statuses[pending.id] == JobStatus.PENDING
    stale.refresh_from_db()
    assert stale.error["code"] == "job:app:stale-heartbeat"
