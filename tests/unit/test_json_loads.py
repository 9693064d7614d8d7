"""The fast JSON decoder the worker uses for envelopes and task bodies: kombu's results."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from kombu.serialization import loads as registry_loads
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from agentcron.deadletters import json_loads

PLAIN = json.dumps([[], {"job": "a", "window_key": "a@2026-01-01T00:00:00+00:00", "n": 1.5},
                    {"callbacks": None, "chord": None}])  # fmt: skip


@pytest.mark.parametrize("wrap", [str, str.encode, lambda s: bytearray(s.encode()),
                                  lambda s: memoryview(s.encode())])  # fmt: skip
def test_plain_text_in_any_buffer_decodes_as_kombu_does(wrap: object) -> None:
    data = wrap(PLAIN)  # type: ignore[operator]
    assert json_loads(data) == kombu_loads(PLAIN)


def test_kombu_typed_values_still_decode_to_their_types() -> None:
    value = {"at": datetime(2026, 1, 1, tzinfo=UTC), "id": uuid.uuid4(), "d": Decimal("1.5"),
             "raw": b"\x00\xff"}  # fmt: skip
    text = kombu_dumps(value)
    assert json_loads(text) == kombu_loads(text) == value


def test_an_escaped_type_key_is_decoded_by_kombu_too() -> None:
    text = '{"\\u005f_type__": "uuid", "__value__": {"hex": "' + "7".zfill(32) + '"}}'
    assert isinstance(kombu_loads(text), uuid.UUID)
    assert json_loads(text) == kombu_loads(text)
    assert json_loads('{"k": "caf\\u00e9\\n"}') == {"k": "café\n"}


def test_invalid_json_raises_a_value_error() -> None:
    with pytest.raises(ValueError):
        json_loads('{"a": ')


def test_the_worker_transport_registers_it_for_celery_bodies() -> None:
    import workers.transport  # noqa: F401  (registers the decoder)
    from workers.bodies import BODIES

    assert registry_loads(PLAIN.encode(), "application/json", "utf-8") == kombu_loads(PLAIN)
    from kombu.serialization import registry

    assert registry._decoders["application/json"] == BODIES.loads


def test_a_body_is_decoded_once_for_the_strategy_and_the_tracer() -> None:
    from workers.bodies import SharedBodies

    bodies = SharedBodies(size=2)
    body = PLAIN.encode()
    assert bodies.loads(body) is not bodies.loads(body)  # not kept outside the asyncio pool
    bodies.keep = True
    first = bodies.loads(body)  # Celery's strategy
    assert bodies.loads(body) is first  # its tracer, handed the same bytes object
    assert bodies.loads(body) is not first  # kept once only
    equal = PLAIN.encode()
    assert equal is not body and bodies.loads(equal) == first  # by identity, never by value
    for n in range(5):  # never traced: at most `size` results wait
        bodies.loads(json.dumps([n]).encode())
    assert len(bodies._waiting) <= 2
    assert bodies.loads(PLAIN) == first  # text is just decoded


def test_a_kept_body_shares_its_keys_and_job_names_across_messages() -> None:
    from workers.bodies import SharedBodies

    bodies = SharedBodies()
    bodies.keep = True
    one, two = (bodies.loads(PLAIN.encode()) for _ in range(2))
    assert one == two == kombu_loads(PLAIN)
    key_one = next(k for k in one[1] if k == "window_key")
    key_two = next(k for k in two[1] if k == "window_key")
    assert key_one is key_two and one[1]["job"] is two[1]["job"]
    assert one[1]["window_key"] is not two[1]["window_key"]  # a unique value is left alone
