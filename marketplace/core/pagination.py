from rest_framework.pagination import LimitOffsetPagination as _LimitOffsetPagination


class LimitOffsetPagination(_LimitOffsetPagination):
    """Limit/offset with a ceiling, so one request cannot ask for the whole table."""

    default_limit = 20
    max_limit = 100
