"""Sweeps: hyperparameter searches whose trials are jobs (DESIGN.md §15)."""
