"""A job's live events as Server-Sent Events, replayed from Redis or rebuilt from SQL."""
