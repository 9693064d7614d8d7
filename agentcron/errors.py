"""The error types agentcron raises to its users."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a declaration: which job, which field, which text, and why."""

    job: str | None
    field: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = f"job {self.job!r}: " if self.job else ""
        return f"{where}{self.field}: {self.reason} (got {self.value!r})"


class ConfigError(ValueError):
    """Raised for any invalid declaration; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(None, "config", "", problems)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def for_job(self, job: str) -> ConfigError:
        """The same problems, attributed to ``job`` where they name none."""
        return ConfigError(
            Problem(p.job or job, p.field, p.value, p.reason) for p in self.problems
        )


class AgentcronError(RuntimeError):
    """Base class for runtime errors (store failures, lost leases, ...)."""
