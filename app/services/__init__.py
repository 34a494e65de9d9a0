"""Service functions: take a Session and keyword-only arguments; the caller owns the commit."""
