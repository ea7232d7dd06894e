"""kombu's Redis transport, surviving a broker that dies while a task is unacknowledged.

On a lost connection Celery 5.7 first ``collect()``s it, which detaches its transport
(``transport.client = None``), and then closes it; messages of that connection are still
acked (a task finishing after the loss) and its unacked ones restored (closing its channel)
through the detached transport. kombu's ``Channel._connparams`` then fails with
``AttributeError: 'NoneType' object has no attribute 'hostname'``, which is not one of the
transport's connection errors: Celery logs "Unrecoverable error" and the worker exits, and
with it the heartbeat's dispatcher that re-sends the jobs left "queued, waiting for the
broker". Whether a message is in flight when the broker dies is a matter of timing.

Raising a connection error there instead lets kombu and Celery treat it as the connection
loss it is: the close is ignored, the late ack is logged ("Couldn't ack"), the consumer
reconnects, and Redis hands the unacked message out again after the visibility timeout
(the job's claim then skips a job that already finished).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError("this broker connection was closed after a connection loss")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]  # private in kombu; its stub omits it


class Transport(kombu_redis.Transport):
    Channel = Channel
