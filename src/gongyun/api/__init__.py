"""REST API: app factory, dependencies, routes."""
