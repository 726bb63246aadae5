"""Security: identity and access, tenancy, audit, classification, PKI, industrial IDS."""
