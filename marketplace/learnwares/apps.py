from django.apps import AppConfig


class LearnwaresConfig(AppConfig):
    name = "marketplace.learnwares"
    label = "learnwares"

    def ready(self) -> None:
        from marketplace.jobs.services import job_finalizer_register
        from marketplace.learnwares.services.versions import version_follow_job

        # A publish job and its version reach their final states together (one transaction).
        job_finalizer_register("publish", version_follow_job)
