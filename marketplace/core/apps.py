from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "marketplace.core"
    label = "core"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from marketplace.core import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from marketplace.core.db import on_connection_created
        from marketplace.core.folders import ensure_local_folders

        connection_created.connect(on_connection_created, dispatch_uid="lwm-statement-timeout")
        ensure_local_folders()
