"""Liveness, readiness, versions, metrics, the docs and the dashboard."""
