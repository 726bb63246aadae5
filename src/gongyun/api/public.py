"""The only list of routes that answer without authentication."""

from __future__ import annotations

# (method, path template). Everything not listed here must answer 401 without credentials;
# tests/api/test_openapi_auth.py walks the OpenAPI schema to prove it.
PUBLIC_ROUTES: set[tuple[str, str]] = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    # device enrolment: the one-time token in the body is the credential (gongyun.security.pki)
    ("POST", "/api/v1/pki/enrol"),
    ("GET", "/api/v1/pki/ca"),
    ("GET", "/api/v1/pki/crl"),
}

# The console's HTML shell pages and its language switch (data comes from the API).
from gongyun.console.pages import PUBLIC_ROUTES as _CONSOLE_ROUTES  # noqa: E402

PUBLIC_ROUTES |= {(method.upper(), path) for method, path in _CONSOLE_ROUTES}

# Path prefixes served publicly outside the OpenAPI schema (console pages and static files:
# the data they show comes from authenticated API calls).
PUBLIC_PREFIXES: tuple[str, ...] = ("/console/static/",)


def is_public(method: str, path_template: str) -> bool:
    """True when the route is declared public."""
    return (method.upper(), path_template) in PUBLIC_ROUTES
