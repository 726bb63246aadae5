"""Built-in app ``scheduling``: job shop and flexible job shop scheduling with OR-Tools CP-SAT.

The solver and file formats live in ``gongyun.apps.scheduling.domain`` (no web, no database);
the CLI, routes, tables and workers are thin layers over it. See ``docs/apps/scheduling.md``.
"""
