"""Quality: statistical process control (control charts, run rules, capability) as a built-in app."""
