# kombu is only partly annotated: its functions are untyped here.
# mypy: disable-error-code="no-untyped-call"
"""kombu's SQLAlchemy transport (the embedded ``sqla+sqlite://`` broker) with dead letters.

kombu's channel marks the oldest visible row of a queue invisible and decodes its payload in one
transaction; a payload that is not a message envelope raised out of the worker's consumer (the
worker stopped). This channel reads the row's raw text, checks it with
:func:`agentcron.deadletters.decode_entry`, and moves a poison entry to the dead-letter store
(deleting its row) before looking at the next one; a sound one is returned as kombu does.

``workers.app`` registers this class under kombu's ``sqla`` / ``sqlalchemy`` aliases, because a
``sqla+…`` URL names its transport itself (``broker_transport`` cannot override it).
"""

from __future__ import annotations

from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import text

from agentcron.deadletters import PoisonEntry, dead_letter, decode_entry, max_message_bytes
from workers.deliveries import DELIVERY_ERRORS, drop_poison_delivery

ALIASES = ("sqla", "sqlalchemy")
MAX_POISON_PER_POLL = 100


class Channel(kombu_sqla.Channel):
    """kombu's SQLAlchemy channel; poison rows go to the dead-letter store."""

    def _get_and_deliver(self, queue: str, callback: Any) -> None:
        payload = self._get(queue)
        try:
            callback(payload, queue)
        except DELIVERY_ERRORS as exc:
            drop_poison_delivery(self, payload, queue, exc)

    def _get(self, queue: str, timeout: Any = None) -> dict[str, Any]:
        for _ in range(MAX_POISON_PER_POLL):
            payload = self._take_row(queue)
            if payload is not None:
                return payload
        raise Empty()

    def _take_row(self, queue: str) -> dict[str, Any] | None:
        """The envelope of the queue's oldest visible row, which is marked delivered (kombu's
        query); None when that row was poison (dead-lettered, then deleted)."""
        obj = self._get_or_create(queue)
        if self.session.bind.name == "sqlite":
            self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            msg = (self.session.query(self.message_cls).with_for_update()
                   .filter(self.message_cls.queue_id == obj.id)
                   .filter(self.message_cls.visible != False)  # noqa: E712
                   .order_by(self.message_cls.sent_at).order_by(self.message_cls.id)
                   .limit(1).first())  # fmt: skip
            if not msg:
                raise Empty()
            raw = msg.payload if isinstance(msg.payload, str | bytes) else str(msg.payload)
            try:
                payload = decode_entry(raw, max_bytes=max_message_bytes())
            except PoisonEntry as exc:
                dead_letter(exc.reason, queue, raw)  # stored before the row goes
                self.session.delete(msg)
                return None
            msg.visible = False
            return payload
        finally:
            self.session.commit()


class Transport(kombu_sqla.Transport):
    """kombu's SQLAlchemy transport with :class:`Channel`."""

    Channel = Channel


def install() -> None:
    """Make ``sqla+…`` broker URLs use this transport in this process."""
    for alias in ALIASES:
        TRANSPORT_ALIASES[alias] = f"{__name__}:Transport"
