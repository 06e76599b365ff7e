"""The one error type users can fix, and its few flavours.

Transports show ``str(error)`` as it is: the message says what was wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence


class CRMError(Exception):
    """Something the user can fix; the message says what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class NotFound(CRMError):
    """The thing asked for does not exist; ``suggestions`` holds close matches, if any."""

    def __init__(
        self, message: str, *, suggestions: Sequence[str] = (), hint: str | None = None
    ) -> None:
        if suggestions and hint is None:
            hint = "Did you mean: " + ", ".join(suggestions) + "?"
        super().__init__(message, hint=hint)
        self.suggestions = list(suggestions)


class Ambiguous(CRMError):
    """More than one thing matches; we ask rather than guess."""

    def __init__(self, message: str, *, candidates: Sequence[str]) -> None:
        super().__init__(message, hint="Which one? " + "; ".join(candidates))
        self.candidates = list(candidates)


class PermissionDenied(CRMError):
    """The actor's role does not allow this change."""
