"""The trace app's domain: identifier templates, EPCIS documents, labels (no web, no database)."""
