"""Alembic migration history of kerasd; one history for PostgreSQL and SQLite (DESIGN.md §11)."""
