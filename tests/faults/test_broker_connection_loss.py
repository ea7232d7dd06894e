"""The Redis transport the worker uses (workers/broker_transport.py), on its own redis-server:
a message still held when the broker dies -- Celery collects the connection, then acks the
message of a task that finished meanwhile and closes the connection -- gives connection
errors, which kombu and Celery handle by reconnecting, never the AttributeError that made
the worker exit ("Unrecoverable error") and left jobs "queued, waiting for the broker"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange, Queue

from tests.faults.stack import RedisServer
from workers.broker_transport import Transport


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.destroy()


def test_a_late_ack_and_the_close_after_the_broker_died_are_connection_errors(redis_server: RedisServer):
    connection = Connection(redis_server.url(), transport="workers.broker_transport:Transport")
    assert isinstance(connection.transport, Transport)
    queue = Queue("lwm-held", Exchange("", type="direct"), routing_key="lwm-held")
    with connection.Producer() as producer:
        producer.publish({"n": 1}, routing_key="lwm-held", declare=[queue])
    message = queue(connection.default_channel).get(no_ack=False)  # held, as by a running task
    assert message is not None and message.payload == {"n": 1}

    redis_server.kill()
    # The state Celery's handling of the loss leaves (connection.collect(), errors ignored): the
    # channel's client pool dropped and the transport detached from the connection.
    message.channel._disconnect_pools()
    connection._do_close_transport()
    with pytest.raises(connection.connection_errors):
        message.ack()  # ack_log_error logs these; an AttributeError stopped the worker
    try:
        connection.close()  # Connection.maybe_close_channel ignores these
    except connection.connection_errors:
        pass


def test_the_settings_select_it_for_a_redis_broker():
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        pytest.skip("the broker is not Redis here")
    from workers.celery import app

    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
