"""Typed groups of operations, one module per area of the API."""
