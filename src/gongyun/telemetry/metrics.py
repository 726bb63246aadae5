"""Prometheus metrics of ingest and of the time-series store writes.

Ingest counts samples (accepted, rejected by reason) and observes batch sizes when a batch is
judged; the writer observes each store write's latency and points, the ingest lag (now minus
the newest sample's timestamp of a write, once it is stored) and the depth of its queue.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACCEPTED = Counter("gongyun_telemetry_ingest_accepted_total", "Samples accepted by ingest")
REJECTED = Counter("gongyun_telemetry_ingest_rejected_total", "Samples rejected by ingest", ["reason"])
BATCH = Histogram(
    "gongyun_telemetry_ingest_batch_samples",
    "Samples per batch submitted to ingest",
    buckets=(1, 10, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000),
)
LAG = Histogram(
    "gongyun_telemetry_ingest_lag_seconds",
    "Now minus the newest sample timestamp of a write, once stored",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
QUEUE = Gauge("gongyun_telemetry_ingest_queue_chunks", "Chunks waiting for the store writer")
WRITE_SECONDS = Histogram(
    "gongyun_telemetry_store_write_seconds",
    "Latency of one write to the time-series store",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WRITE_POINTS = Counter("gongyun_telemetry_store_points_total", "Points written to the time-series store")
WRITE_ERRORS = Counter("gongyun_telemetry_store_write_errors_total", "Failed writes to the time-series store")
