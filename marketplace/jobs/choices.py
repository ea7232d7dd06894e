from django.db import models


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    REJECTED = "rejected", "Rejected"  # the user's input was refused; retrying will not help
    FAILED = "failed", "Failed"  # our side failed (crash, time limit, stale heartbeat)
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATES = (JobStatus.SUCCEEDED, JobStatus.REJECTED, JobStatus.FAILED, JobStatus.CANCELLED)
ACTIVE_STATES = (JobStatus.PENDING, JobStatus.RUNNING)
