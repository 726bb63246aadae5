"""Response classes and declarations for the answers that are not JSON."""

from __future__ import annotations

from typing import Any

from fastapi.responses import StreamingResponse


class EventStream(StreamingResponse):
    """A server-sent event stream (``text/event-stream``), so the document says so."""

    media_type = "text/event-stream"


EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The points as a file",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
