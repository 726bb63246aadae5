"""The built-in ``maintenance`` app: anomaly detection, health index, RUL, fault diagnosis, work orders.

Domain modules (``cmapss``, ``features``, ``rul``, ``skab``, ``anomaly``, ``diagnosis``) know nothing of
FastAPI or the database; the CLI, routes, tables and workers are thin layers over them.
"""
