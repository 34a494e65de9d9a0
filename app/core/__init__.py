"""The framework-free core that API and workers share: settings, database, tables, blobs, errors, events, queue."""
