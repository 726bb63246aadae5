"""Structured logging: JSON off a terminal, a request id on every line, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("gongyun_request_id", default=None)

# Hand-written because it is a dozen lines: stdlib logging + this formatter covers uvicorn's
# loggers too, which a second logging library would have to be bridged to.
_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|api[_-]?key|cookie", re.I)
_SECRET_INLINE = re.compile(
    r"(?i)(bearer\s+|gy_[0-9a-f]{12}_|password=|token=|refresh_token\"?:\s*\"?)([^\s&\"',]+)"
)
_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def redact(text: str) -> str:
    """Mask bearer tokens, API keys and password parameters inside free text."""
    return _SECRET_INLINE.sub(lambda m: m.group(1) + "***", text)


def _clean(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return "***"
    if isinstance(value, str):
        return redact(value)
    return value


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and not key.startswith("_") and value is not None:
                doc[key] = _clean(key, value)
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """Readable lines for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        extra = " ".join(
            f"{k}={_clean(k, v)}"
            for k, v in record.__dict__.items()
            if k not in _STD_ATTRS and k != "request_id" and not k.startswith("_") and v is not None
        )
        line = f"{record.levelname:<7} {record.name}: {redact(record.getMessage())}"
        if rid:
            line += f" [req {rid}]"
        if extra:
            line += f"  {extra}"
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


# Loggers of the libraries Gongyun drives. At INFO they narrate every protocol exchange (asyncua
# logs each read of the demo's OPC UA server, amqtt each connection), which drowns the
# platform's own lines; they are held at WARNING unless the level asked for is DEBUG.
LIBRARY_LOGGERS: tuple[str, ...] = (
    "aiomqtt",
    "aiosqlite",
    "alembic",
    "amqtt",
    "asyncio",
    "asyncua",
    "httpcore",
    "httpx",
    "multipart",
    "nats",
    "paho",
    "psycopg",
    "pyhandle",
    "pymodbus",
    "python_multipart",
    "sqlalchemy",
    "transitions",
    "urllib3",
    "uvicorn.access",
    "watchfiles",
    "websockets",
)


def quiet_libraries(level: str | int = "INFO") -> None:
    """Hold third-party loggers at WARNING (or ``level`` if stricter); DEBUG lets them all speak."""
    wanted = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(wanted, int):
        raise ValueError(f"unknown log level {level!r}")
    threshold = logging.DEBUG if wanted <= logging.DEBUG else max(wanted, logging.WARNING)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(threshold)


def setup_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure the root logger (and uvicorn's) once; library loggers as :func:`quiet_libraries`."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    quiet_libraries(level)  # uvicorn.access among them: our middleware logs each request
