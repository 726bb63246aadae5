"""Gongyun (工云): an open industrial internet platform."""

__version__ = "0.1.0"
