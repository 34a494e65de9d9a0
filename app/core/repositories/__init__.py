"""Repositories both processes use (the API and the workers): every SQL statement of their tables, each once."""
