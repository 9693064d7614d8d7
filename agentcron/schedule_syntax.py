"""The text of schedule expressions: cron fields, macros and intervals, checked with messages
that name what is wrong (the schedule objects are :mod:`agentcron.schedules`)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from cronsim import CronSim, CronSimError
from cronsim.cronsim import Field as _CronField

from agentcron.errors import ConfigError, Problem

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 0",
}
_CRON_FIELDS = (
    ("minute", _CronField.MINUTE, "0-59"),
    ("hour", _CronField.HOUR, "0-23"),
    ("day-of-month", _CronField.DAY, "1-31 or L"),
    ("month", _CronField.MONTH, "1-12 or jan-dec"),
    ("day-of-week", _CronField.DOW, "0-7 or sun-sat"),
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_UNIT_WORDS = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "week": "w", "weeks": "w",
}  # fmt: skip
_INTERVAL_FORMS = tuple(re.compile(form, re.ASCII) for form in (
    r"(?P<n>[0-9]+)",
    r"\*/(?P<n>[0-9]+)(?P<unit>[smhdw]?)",
    r"(?P<n>[0-9]+) ?(?P<unit>[a-z]+)",
    r"every (?P<n>[0-9]+)? ?(?P<unit>[a-z]+)",
))  # matched with fullmatch: a trailing newline never slips through
MAX_INTERVAL = timedelta(days=3650)
"""The longest interval or duration accepted (10 years): keeps every sum of an instant and a
period inside the calendar (``datetime`` ends at 9999-12-31)."""



def bad_expression(field: str, value: str, reason: str) -> ConfigError:
    """A ConfigError about one schedule field."""
    return ConfigError([Problem(None, field, value, reason)])


def check_cron_fields(fields: str) -> None:
    parts = fields.split()
    if len(parts) != 5:
        raise bad_expression("schedule", fields, f"a cron expression has 5 fields, this has {len(parts)}")
    for (field_name, field, allowed), text in zip(_CRON_FIELDS, parts, strict=True):
        try:
            field.parse(text.upper())
        except (CronSimError, ValueError, IndexError) as exc:
            items = text.split(",")
            bad = next((i for i in items if not _item_ok(field, i)), text)
            reason = f"bad {field_name} value {bad!r} in {text!r}; allowed {allowed}"
            if bad == "" or "/0" in bad:
                reason = f"bad {field_name} value {text!r}: empty list item or step 0"
            raise ConfigError([Problem(None, f"schedule ({field_name})", bad or text, reason)]) from exc
    try:
        CronSim(fields, datetime(2026, 1, 1))
    except CronSimError as exc:
        raise bad_expression("schedule (day-of-month)", parts[2], f"no month has that day: {exc}") from exc


def _item_ok(field: _CronField, item: str) -> bool:
    try:
        field.parse(item.upper())
    except (CronSimError, ValueError, IndexError):
        return False
    return True


def interval_seconds(text: str) -> int | None:
    for form in _INTERVAL_FORMS:
        match = form.fullmatch(text)
        if not match:
            continue
        groups = match.groupdict()
        unit = _UNIT_WORDS.get(groups.get("unit") or "s")
        if unit is None:
            raise bad_expression("schedule", text, f"unknown time unit {groups.get('unit')!r}")
        digits = (groups.get("n") or "1").lstrip("0") or "0"
        limit = int(MAX_INTERVAL.total_seconds())
        seconds = int(digits) * _UNIT_SECONDS[unit] if len(digits) <= 12 else limit + 1
        if seconds <= 0:
            raise bad_expression("schedule", text, "an interval must be at least one second (step 0)")
        if seconds > limit:
            reason = f"an interval must be at most {MAX_INTERVAL.days} days (10 years)"
            raise bad_expression("schedule", text, reason)
        return seconds
    return None


