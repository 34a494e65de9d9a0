"""Models: specs in every form, checked and built in the spec checker, stored with their summaries."""
