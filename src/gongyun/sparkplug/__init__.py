"""Sparkplug B 3.0 over MQTT, as a protocol library that knows nothing of tenants, storage or ingest.

* :mod:`~gongyun.sparkplug.payload` — the Eclipse Tahu ``Payload`` message and scalar values;
  :mod:`~gongyun.sparkplug.values` — DataSet, Template and PropertySet values;
  :mod:`~gongyun.sparkplug.topics` — topics and the QoS of each message type.
* :mod:`~gongyun.sparkplug.decode` — the decoder: a payload's metrics as columns.
* :mod:`~gongyun.sparkplug.node` — an edge node (births, deaths, bdSeq, seq, aliases, rebirth).
* :mod:`~gongyun.sparkplug.host` — a host application (STATE, seq checks, rebirth requests,
  commands) and :mod:`~gongyun.sparkplug.flow`, which pauses reading while the consumer is busy.
"""
