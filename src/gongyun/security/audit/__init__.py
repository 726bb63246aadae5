"""Tamper-evident audit trail: a hash chain and an RFC 9162 transparency log per tenant."""

from gongyun.security.audit.chain import AuditEvent, AuditHead, AuditNode, record, verify

__all__ = ["AuditEvent", "AuditHead", "AuditNode", "record", "verify"]
