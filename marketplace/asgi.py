import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings.base")
application = get_asgi_application()

from marketplace.core.db import PROCESS_ROLE  # noqa: E402  (after setup: settings are configured)

PROCESS_ROLE["role"] = "web"  # web requests get LWM_DB_STATEMENT_TIMEOUT_MS
