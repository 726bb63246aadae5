"""Errors raised by the edge gateway, each with a stable code (Sparkplug B payload errors are
:mod:`gongyun.sparkplug.errors`, re-exported here)."""

from __future__ import annotations

from gongyun.errors import ConfigError, GongyunError, InvalidInput, PermissionDenied, ValidationFailed
from gongyun.sparkplug.errors import DataSetInvalid, TemplateInvalid

__all__ = [
    "CommandNotConfirmed",
    "CommandRefused",
    "DataSetInvalid",
    "DecodeError",
    "DeviceError",
    "EdgeConfigError",
    "ProfileInvalid",
    "TemplateInvalid",
]


class ProfileInvalid(ValidationFailed):
    """A device profile or gateway config failed validation; ``errors`` names file, line and field."""

    code = "edge_profile_invalid"
    title = "Device profile invalid"


class EdgeConfigError(ConfigError):
    """The gateway configuration cannot be used."""

    code = "edge_config_invalid"
    title = "Edge configuration invalid"


class DeviceError(GongyunError):
    """A device could not be reached or answered with an error or garbage."""

    code = "device_error"
    status = 502
    title = "Device error"


class DecodeError(InvalidInput):
    """Bytes from a device or broker could not be decoded."""

    code = "edge_decode_error"
    title = "Undecodable device data"


class CommandRefused(PermissionDenied):
    """A device write was refused (permission, read-only tag, limits); the message says why."""

    code = "command_refused"
    title = "Command refused"


class CommandNotConfirmed(DeviceError):
    """A write was sent but the read-back did not confirm the new value."""

    code = "command_not_confirmed"
    title = "Command not confirmed"
