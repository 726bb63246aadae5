"""GS1 Digital Link QR labels (segno): SVG and PDF, the URI under the label printed beneath it."""

from __future__ import annotations

import io
from typing import Literal
from urllib.parse import quote

Format = Literal["svg", "pdf", "png"]
MEDIA = {"svg": "image/svg+xml", "pdf": "application/pdf", "png": "image/png"}


def label_uri(resolver: str, key: str) -> str:
    """The Digital Link URI of an item key under a resolver's base URL (own keys as ``/own/...``)."""
    base = resolver.rstrip("/")
    if key.startswith("own:"):
        return f"{base}/own/{quote(key[4:], safe='')}"
    return base + key


def qr(uri: str, fmt: Format = "svg", scale: int = 4) -> bytes:
    """A QR code (error correction M, quiet zone 4) of ``uri`` in SVG, PDF or PNG."""
    import segno

    code = segno.make_qr(uri, error="m")
    out = io.BytesIO()
    if fmt == "svg":
        code.save(out, kind="svg", scale=scale, title=uri, xmldecl=True)
    elif fmt == "pdf":
        code.save(out, kind="pdf", scale=scale)
    else:
        code.save(out, kind="png", scale=scale)
    return out.getvalue()
