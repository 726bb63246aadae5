"""Device connectivity: drivers, profiles, store-and-forward buffer, uplink and gateway runtime."""
