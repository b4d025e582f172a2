"""Domain errors: why a command was rejected, in terms a gRPC status can carry.

The domain raises these from `decide`; the gRPC kit maps each to its canonical
status code with `google.rpc` details. They carry no I/O and no gRPC types. Each
carries a `Reason` from the registry (`libs.domain.reasons`), which documents it in
docs/errors.md; a reason of another status code is a bug, refused when raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from libs.domain.reasons import Reason


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """A command was rejected, for a documented `why`. `reason` is what clients key on: the stable
    UPPER_SNAKE_CASE ErrorInfo reason."""

    code = "UNKNOWN"

    def __init__(self, message: str, *, reason: Reason, metadata: dict[str, str] | None = None):
        if not isinstance(reason, Reason) or reason.code != self.code:
            raise TypeError(f"{type(self).__name__} takes a {self.code} Reason, not {reason!r}")
        super().__init__(message)
        self.message = message
        self.why = reason
        self.reason = reason.reason
        self.metadata = dict(metadata or {})


class InvalidArgument(DomainError):
    code = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: list[FieldViolation] | None = None,
        *,
        reason: Reason = Reason.INVALID_ARGUMENT,
        **kw,
    ):
        super().__init__(message, reason=reason, **kw)
        self.violations = list(violations or [])


class NotFound(DomainError):
    code = "NOT_FOUND"


class PermissionDenied(DomainError):
    code = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class FailedPrecondition(DomainError):
    code = "FAILED_PRECONDITION"


class AlreadyExists(DomainError):
    code = "ALREADY_EXISTS"


class ResourceExhausted(DomainError):
    code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after_seconds: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after_seconds = retry_after_seconds


class Aborted(DomainError):
    code = "ABORTED"


class Unavailable(DomainError):
    code = "UNAVAILABLE"

    def __init__(self, message: str, *, retry_after_seconds: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after_seconds = retry_after_seconds


@dataclass
class Validator:
    """Collects field violations, then raises one InvalidArgument with all of them."""

    violations: list[FieldViolation] = field(default_factory=list)

    def check(self, ok: bool, field_name: str, description: str) -> None:
        if not ok:
            self.violations.append(FieldViolation(field_name, description))

    def raise_if_any(self, message: str = "the request has invalid fields") -> None:
        if self.violations:
            detail = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
            raise InvalidArgument(f"{message}: {detail}", self.violations)
