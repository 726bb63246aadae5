"""Telemetry: ingestion, cleaning, the time-series store, queries, rollups and export."""
