"""The composition root: builds a running platform from the configuration (see ``lifecycle``)."""

from gongyun.platform.container import Platform
from gongyun.platform.lifecycle import prepare_database, start_platform

__all__ = ["Platform", "prepare_database", "start_platform"]
