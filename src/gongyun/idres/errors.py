"""Identifier-resolution errors and their Handle ``responseCode`` / HTTP status mapping.

Handle.Net REST response codes used here (RFC 3652 message codes)::

    1   success                     200 (201 when created)
    2   unexpected server error     500
    100 handle not found            404
    101 handle already exists       409
    102 invalid handle              400
    200 values not found            200 (record exists, no value matched)
    201 value already exists        409
    202 invalid value               400
    301 server not responsible      404
    400 invalid admin               403
    401 insufficient permissions    403
    402 authentication needed       401
    403 authentication failed       401
"""

from __future__ import annotations

from gongyun.errors import (
    AuthError,
    Conflict,
    GongyunError,
    InvalidInput,
    MalformedIdentifier,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ValidationFailed,
)

RC_SUCCESS = 1
RC_ERROR = 2
RC_HANDLE_NOT_FOUND = 100
RC_HANDLE_ALREADY_EXISTS = 101
RC_INVALID_HANDLE = 102
RC_VALUES_NOT_FOUND = 200
RC_VALUE_ALREADY_EXISTS = 201
RC_INVALID_VALUE = 202
RC_SERVER_NOT_RESP = 301
RC_INVALID_ADMIN = 400
RC_INSUFFICIENT_PERMISSIONS = 401
RC_AUTHENTICATION_NEEDED = 402
RC_AUTHENTICATION_FAILED = 403


class HandleNotFound(NotFound):
    """No record exists under this identifier (for this caller)."""

    code = "identifier_not_found"
    title = "Identifier not found"


class PrefixNotServed(NotFound):
    """No active prefix of the caller's tenant covers this identifier."""

    code = "identifier_prefix_not_served"
    title = "Prefix not served here"


class HandleExists(Conflict):
    """A record already exists under this identifier."""

    code = "identifier_exists"
    title = "Identifier already exists"


class FilingTransition(Conflict):
    """A filing (备案) status change that the workflow does not allow."""

    code = "identifier_filing_transition"
    title = "Filing status change not allowed"


class ResolutionFailed(GongyunError):
    """A referral could not be followed (every site for a prefix failed)."""

    code = "identifier_resolution_failed"
    status = 502
    title = "Resolution failed"


def response_code(exc: BaseException) -> tuple[int, int]:
    """``(responseCode, HTTP status)`` for an error raised while serving the Handle API."""
    from gongyun.idres.values import InvalidValue

    if isinstance(exc, MalformedIdentifier):
        return RC_INVALID_HANDLE, 400
    if isinstance(exc, PrefixNotServed):
        return RC_SERVER_NOT_RESP, 404
    if isinstance(exc, HandleNotFound | NotFound):
        return RC_HANDLE_NOT_FOUND, 404
    if isinstance(exc, HandleExists):
        return RC_HANDLE_ALREADY_EXISTS, 409
    if isinstance(exc, Conflict):
        return RC_VALUE_ALREADY_EXISTS, 409
    if isinstance(exc, PayloadTooLarge):
        return RC_INVALID_VALUE, 413
    if isinstance(exc, InvalidValue | ValidationFailed | InvalidInput):
        return RC_INVALID_VALUE, exc.status if isinstance(exc, GongyunError) else 400
    if isinstance(exc, AuthError):
        if exc.code == "unauthenticated":
            return RC_AUTHENTICATION_NEEDED, 401
        return RC_AUTHENTICATION_FAILED, 401
    if isinstance(exc, PermissionDenied):
        return RC_INSUFFICIENT_PERMISSIONS, 403
    if isinstance(exc, GongyunError):
        return RC_ERROR, exc.status
    return RC_ERROR, 500
