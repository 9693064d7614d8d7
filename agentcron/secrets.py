"""Secrets in job config and in every text agentcron writes: one place for all of it.

- A config value written ``"env:NAME"`` is a reference: the worker resolves it from its own
  environment right before the agent gets ``ctx.config`` (:func:`resolve_config`). The ledger,
  the schedule table, task messages and every printout keep the literal ``env:NAME``.
- Values under keys that look secret (``*key*``, ``*token*``, ``*secret*``, ``*password*``, any
  case) are shown as ``***`` in every output (:func:`redact`). Only text values are masked: a
  number under ``max_tokens`` is no secret, and ``env:NAME`` references stay visible.
- Every secret value a process resolved (and every literal one under a secret-looking key) is
  remembered, and :func:`scrub` removes them, plus ``key=value`` / ``"token": "..."`` pairs,
  ``Bearer`` tokens and URL passwords, from any text before it is stored, logged or sent.
  :func:`scrub_value` does the same to the strings of a JSON result (remembered values only).
- :func:`redact_url` masks a URL's password and its secret-looking query parameters.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agentcron.errors import ConfigError, Problem

ENV_PREFIX = "env:"
MASK = "***"
MIN_SECRET_LENGTH = 6
"""Shorter values are not remembered: scrubbing ``"1"`` from every text would ruin it."""

_SECRET_WORDS = "key|token|secret|password|passwd|credential"
_SECRET_KEY = re.compile(_SECRET_WORDS, re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = rf"[\w.-]*(?:{_SECRET_WORDS})[\w.-]*"
_VALUE = r"(?:\"[^\"]*\"|'[^']*'|[^\s&,;'\"}\]]+)"
_PATTERNS = (
    # scheme://user:password@host
    (re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@"), rf"\g<1>{MASK}@"),
    # api_key=..., ?password=..., TOKEN = ...
    (re.compile(rf"(\b{_NAME}\s*=\s*){_VALUE}", re.IGNORECASE), rf"\g<1>{MASK}"),
    # "api_key": "...", 'token': ... (a quoted key, as JSON and Python reprs print them)
    (re.compile(rf"([\"']{_NAME}[\"']\s*:\s*){_VALUE}", re.IGNORECASE), rf"\g<1>{MASK}"),
    # Authorization: Bearer ...
    (re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\g<1>{MASK}"),
)


def is_secret_key(key: object) -> bool:
    """Whether a config key looks like it names a secret (``api_key``, ``Token``, ...)."""
    return isinstance(key, str) and _secret_name(key)


@functools.lru_cache(maxsize=4096)
def _secret_name(key: str) -> bool:
    # the same few keys come back for every job (a beat start-up redacts 100,000 definitions)
    return bool(_SECRET_KEY.search(key))


def env_reference(value: object) -> str | None:
    """``NAME`` when ``value`` is an ``env:NAME`` reference, else None."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        return value[len(ENV_PREFIX):]
    return None


def redact(value: Any, secret: bool = False) -> Any:
    """``value`` (a config, a definition, a result) with text under secret-looking keys masked."""
    if isinstance(value, Mapping):
        return {k: redact(v, secret or is_secret_key(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secret) for v in value]
    if secret and isinstance(value, str) and value and env_reference(value) is None:
        return MASK
    return value


def literal_secrets(config: Mapping[str, Any]) -> list[str]:
    """Top-level keys of ``config`` that look secret and hold literal text (not ``env:NAME``)."""
    return [str(k) for k, v in config.items()
            if is_secret_key(k) and redact({k: v}) != {k: v}]  # fmt: skip


def check_config(config: Mapping[str, Any]) -> list[Problem]:
    """Problems with the ``env:NAME`` references of a config (names must be variable names)."""
    problems: list[Problem] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        elif (name := env_reference(value)) is not None and not _ENV_NAME.fullmatch(name):
            problems.append(Problem(None, f"config.{path}", repr(value)[:80],
                                    "env: must be followed by a variable name"))  # fmt: skip

    walk(config, "")
    return problems


class Scrubber:
    """The secret values this process has seen, and the one function that removes them."""

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def remember(self, value: str) -> None:
        """Scrub ``value`` from every text from now on (values under 6 characters are ignored)."""
        value = value.strip()
        if len(value) < MIN_SECRET_LENGTH or value in self._known:
            return
        with self._lock:
            self._known.add(value)
            ordered = sorted(self._known, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def forget_all(self) -> None:
        """Drop every remembered value (tests)."""
        with self._lock:
            self._known.clear()
            self._pattern = None

    def known(self, text: str) -> str:
        """``text`` without the remembered values."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def text(self, text: str) -> str:
        """``text`` without remembered values, secret ``key=value`` pairs and URL passwords."""
        text = self.known(text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with the remembered secrets removed from its strings."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.known(value)
        if isinstance(value, Mapping):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


SCRUBBER = Scrubber()


def scrub(text: str | None) -> str | None:
    """The scrubber every error text goes through before it is stored, logged or sent."""
    return None if text is None else SCRUBBER.text(text)


def scrub_value(value: Any) -> Any:
    """A run's result without the secret values this process resolved."""
    return SCRUBBER.value(value)


def resolve_config(
    config: Mapping[str, Any], lookup: Callable[[str], str | None], job: str | None = None
) -> dict[str, Any]:
    """``config`` with every ``env:NAME`` replaced by the variable's value (remembered for
    :func:`scrub`); literal text under secret-looking keys is remembered too. A variable that is
    not set raises :class:`ConfigError` naming the key and the variable, never a value."""

    def walk(value: Any, path: str, secret: bool) -> Any:
        if isinstance(value, Mapping):
            return {k: walk(v, f"{path}.{k}" if path else str(k), secret or is_secret_key(k))
                    for k, v in value.items()}  # fmt: skip
        if isinstance(value, list | tuple):
            return [walk(v, f"{path}[{i}]", secret) for i, v in enumerate(value)]
        name = env_reference(value)
        if name is not None:
            resolved = lookup(name) if _ENV_NAME.fullmatch(name) else None
            if resolved is None:
                raise ConfigError([Problem(job, f"config.{path}", str(value),
                                           f"environment variable {name} is not set")])  # fmt: skip
            SCRUBBER.remember(resolved)
            return resolved
        if secret and isinstance(value, str):
            SCRUBBER.remember(value)
        return value

    return {k: walk(v, str(k), is_secret_key(k)) for k, v in config.items()}


def redact_url(url: str) -> str:
    """``url`` with its password and secret-looking query parameters replaced by ``***``."""
    parts = urlsplit(url)
    changed = parts
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        changed = changed._replace(netloc=f"{parts.username or ''}:{MASK}@{host}")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(is_secret_key(k) for k, _ in pairs):
        masked = [(k, MASK if is_secret_key(k) else v) for k, v in pairs]
        changed = changed._replace(query=urlencode(masked, safe="*"))
    return url if changed == parts else urlunsplit(changed)


class ScrubFilter(logging.Filter):
    """A logging filter (put it on handlers) that scrubs every record's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = SCRUBBER.text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            scrubbed = SCRUBBER.text(text)
            if scrubbed != text:  # the traceback names a secret: keep the scrubbed text only
                record.msg = f"{record.msg}\n{scrubbed}"
                record.exc_info, record.exc_text = None, None
        return True


def install_log_scrubber(logger: logging.Logger | None = None) -> None:
    """Put a :class:`ScrubFilter` on every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
