"""Runs as experiments (DESIGN.md §14): names, tags, notes, params and metric summaries; runs compared."""
