"""The Gongyun error tree.

Every error Gongyun raises on purpose derives from ``GongyunError``. Each class carries a
stable machine-readable ``code`` (used as the problem+json ``code`` member, RFC 9457) and
the HTTP status the API answers with::

    GongyunError                      500 internal
    ├── ConfigError                   500 config_invalid
    ├── InvalidInput                  400 invalid_input
    │   ├── ValidationFailed          422 validation_failed
    │   ├── PayloadTooLarge           413 payload_too_large
    │   └── MalformedIdentifier       400 identifier_malformed
    ├── AuthError                     401 unauthenticated
    │   ├── InvalidCredentials        401 invalid_credentials
    │   ├── TokenInvalid              401 token_invalid
    │   └── AccountLocked             423 account_locked
    ├── PermissionDenied              403 forbidden
    ├── NotFound                      404 not_found
    ├── Conflict                      409 conflict
    ├── RateLimited                   429 rate_limited
    │   └── LoginThrottled            429 login_throttled
    └── ServiceUnavailable            503 service_unavailable
        ├── DatabaseUnavailable       503 database_unavailable
        └── BusUnavailable            503 bus_unavailable
"""

from __future__ import annotations

from typing import Any, ClassVar


class GongyunError(Exception):
    """Base of every error Gongyun raises on purpose."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.title
        self.details = details
        super().__init__(self.message)

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Render as an RFC 9457 problem document."""
        problem: dict[str, Any] = {
            "type": f"https://gongyun.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.message,
            "code": self.code,
        }
        if instance:
            problem["instance"] = instance
        if self.details:
            problem.update({k: v for k, v in self.details.items() if k not in problem})
        return problem


class ConfigError(GongyunError):
    """The configuration is invalid or incomplete."""

    code = "config_invalid"
    title = "Configuration invalid"


class InvalidInput(GongyunError):
    """The caller sent something that cannot be accepted."""

    code = "invalid_input"
    status = 400
    title = "Invalid input"


class ValidationFailed(InvalidInput):
    """A body or parameter failed validation; ``errors`` lists every violation."""

    code = "validation_failed"
    status = 422
    title = "Validation failed"


class PayloadTooLarge(InvalidInput):
    """A request body exceeded the configured limit."""

    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class MalformedIdentifier(InvalidInput):
    """An identifier does not follow the syntax."""

    code = "identifier_malformed"
    title = "Malformed identifier"


class CurrentPasswordRequired(InvalidInput):
    """A user changing their own password did not give the current one."""

    code = "current_password_required"
    title = "Current password required"


class AuthError(GongyunError):
    """The caller is not authenticated."""

    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class InvalidCredentials(AuthError):
    """Username, password or API key is wrong."""

    code = "invalid_credentials"
    title = "Invalid credentials"


class TokenInvalid(AuthError):
    """A token is malformed, expired or revoked."""

    code = "token_invalid"
    title = "Token invalid"


class AccountLocked(AuthError):
    """Too many wrong passwords: the account is locked for a while.

    Sign-in never raises it (a locked account answers like a wrong password, so the answer
    does not reveal that the account exists); kept so clients that know the code still parse.
    """

    code = "account_locked"
    status = 423
    title = "Account locked"


class PermissionDenied(GongyunError):
    """The caller is authenticated but lacks a permission."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class CurrentPasswordInvalid(PermissionDenied):
    """A user changing their own password gave a wrong current password (or is locked out)."""

    code = "current_password_invalid"
    title = "Current password invalid"


class NotFound(GongyunError):
    """The object does not exist or is not visible to the caller."""

    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(GongyunError):
    """The request conflicts with existing state (duplicate name, stale version)."""

    code = "conflict"
    status = 409
    title = "Conflict"


class LastPlatformAdmin(Conflict):
    """The change would leave the installation without an enabled platform administrator."""

    code = "last_platform_admin"
    title = "Last platform administrator"


class RateLimited(GongyunError):
    """Too many requests."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"


class LoginThrottled(RateLimited):
    """Too many failed sign-ins from one client address: wait ``retry_after_s``."""

    code = "login_throttled"
    title = "Too many sign-in attempts"


class ServiceUnavailable(GongyunError):
    """A backing service is not reachable."""

    code = "service_unavailable"
    status = 503
    title = "Service unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The metadata database is not reachable."""

    code = "database_unavailable"
    title = "Database unavailable"


class BusUnavailable(ServiceUnavailable):
    """The message bus is not reachable."""

    code = "bus_unavailable"
    title = "Bus unavailable"
