"""Assets: the ISA-95 hierarchy, devices bound to equipment, tags with units, ranges and classification."""
