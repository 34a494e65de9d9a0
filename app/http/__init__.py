"""The HTTP layer: middleware, authentication, request limits, and errors mapped to problem documents."""
