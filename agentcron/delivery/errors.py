"""The one error a transport raises."""

from __future__ import annotations


class DeliveryError(Exception):
    """A send that did not go: ``transient`` ones are retried with backoff, others fail at once.

    Its text is safe to store and print (no password, no webhook path).
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient
