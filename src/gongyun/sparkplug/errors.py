"""Errors of the Sparkplug B library, each with a stable code."""

from __future__ import annotations

from gongyun.errors import InvalidInput, ServiceUnavailable


class SparkplugPayloadInvalid(InvalidInput):
    """Bytes received on a Sparkplug topic are not a Sparkplug B payload."""

    code = "sparkplug_payload_invalid"
    title = "Invalid Sparkplug B payload"


class DataSetInvalid(SparkplugPayloadInvalid):
    """A DataSet metric is malformed (column/type/row counts disagree, wrong element types)."""

    code = "sparkplug_dataset_invalid"
    title = "Invalid Sparkplug B DataSet"


class TemplateInvalid(SparkplugPayloadInvalid):
    """A Template metric is malformed or references a template that was never defined."""

    code = "sparkplug_template_invalid"
    title = "Invalid Sparkplug B Template"


class NotOnline(ServiceUnavailable):
    """The edge node or host cannot publish now (disconnected, or the primary host is offline)."""

    code = "sparkplug_not_online"
    title = "Sparkplug B client offline"
