"""Tamper-evident audit trail: a hash chain of security events per tenant."""

from gongyun.security.audit.chain import AuditEvent, AuditHead, record, verify

__all__ = ["AuditEvent", "AuditHead", "record", "verify"]
