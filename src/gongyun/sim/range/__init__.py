"""The cyber range: attack scenarios with ground truth against the virtual factory (loopback only)."""
