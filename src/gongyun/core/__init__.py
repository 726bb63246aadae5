"""Pure domain types shared by every room (no I/O)."""

from gongyun.core.types import Quality, Sample, TagRef, TenantId

__all__ = ["Quality", "Sample", "TagRef", "TenantId"]
