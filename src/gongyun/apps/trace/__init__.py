"""Trace: product identifiers, genealogy, EPCIS 2.0 events, trace and recall, as a built-in app."""

__version__ = "0.1.0"
