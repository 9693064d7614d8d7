"""Publishing run messages: batched and pipelined on one connection.

:class:`CeleryPublisher` sends through the Celery app's own producer (so routing, serializer
and message protocol are Celery's), inside ``kombu``'s ``Producer.batch``: on the Redis
transport the LPUSHes go out in one non-transactional pipeline per ``batch_size`` messages;
on other transports (the embedded SQLite broker) publication is immediate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentcron.messages import RunMessage
from agentcron.signing import signed_kwargs


@dataclass(frozen=True)
class Outgoing:
    """One message for one queue."""

    task: str
    queue: str
    message: RunMessage


class Publisher(Protocol):
    """Where the beat sends run messages; raises when the broker does not take them."""

    def publish(self, batch: Sequence[Outgoing]) -> None:
        """Publish every message of ``batch`` or raise."""
        ...


class CeleryPublisher:
    """Publish through a Celery app's producer, pipelined in batches."""

    def __init__(self, app: Any, batch_size: int = 1000, signing_key: str = "") -> None:
        self.app = app
        self.signing_key = signing_key  # AGENTCRON_SIGNING_KEY: sign every message
        self.batch_size = batch_size
        self.published = 0

    def publish(self, batch: Sequence[Outgoing]) -> None:
        """Send each message as kwargs of its task on its queue; raise if the broker fails."""
        if not batch:
            return
        send = self.app.send_task
        with self.app.producer_or_acquire() as producer, producer.batch(self.batch_size):
            for out in batch:
                send(
                    out.task,
                    kwargs=signed_kwargs(out.message, self.signing_key),
                    queue=out.queue,
                    producer=producer,
                    argsrepr="()",
                    kwargsrepr=out.message.short(),
                    retry=False,
                )
        self.published += len(batch)
