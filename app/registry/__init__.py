"""The model registry: registered models per tenant, immutable versions made from jobs with their lineage, aliases."""
