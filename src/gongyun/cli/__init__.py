"""The ``gongyun`` command line."""
