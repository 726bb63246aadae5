"""OEE: overall equipment effectiveness and the ISO 22400-2 KPIs as a built-in app."""
