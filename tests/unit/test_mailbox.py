"""Answers to Celery posted from another thread run on the consumer's loop at once, and so does
the acknowledgement Celery makes inside them (``Consumer.call_soon_ack`` is ``Hub.call_soon``):
with ``Hub.call_soon`` alone that acknowledgement waited for the loop's next poll to time out."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from kombu.asynchronous import Hub

from workers.mailbox import HubMailbox

Post = Callable[[Hub, HubMailbox, Callable[[], None]], None]


def acked_after(post: Post) -> float:
    """Seconds from a post (from another thread) until the ack made inside it has run, on a
    loop with nothing else to do (its poll times out after a second)."""
    hub = Hub()
    idle, _ = socket.socketpair()
    hub.add_reader(idle, lambda *_: None)
    mailbox = HubMailbox(hub)
    acked: list[float] = []

    def answer() -> None:  # as Celery's on_success: the ack is scheduled with call_soon
        hub.call_soon(lambda: acked.append(time.monotonic()))

    loop = hub.create_loop()
    ready = threading.Event()
    posted: list[float] = []

    def poster() -> None:
        ready.wait()
        time.sleep(0.1)  # the loop is in its poll
        posted.append(time.monotonic())
        post(hub, mailbox, answer)

    threading.Thread(target=poster).start()
    ready.set()
    deadline = time.monotonic() + 5
    while not acked and time.monotonic() < deadline:
        next(loop)
    hub.close()
    assert acked and posted
    return acked[0] - posted[0]


def test_an_ack_made_inside_a_posted_answer_runs_without_waiting_for_a_poll() -> None:
    assert acked_after(lambda hub, mailbox, answer: mailbox.post(answer)) < 0.5


def test_call_soon_alone_leaves_that_ack_waiting_for_the_poll() -> None:
    """Why the mailbox (kombu 5.7): if this starts failing, kombu runs such acks itself."""
    assert acked_after(lambda hub, mailbox, answer: hub.call_soon(answer)) > 0.5
