"""The OEE domain: state model, shift calendar, KPIs, losses, rollup reading (NumPy, no I/O)."""
