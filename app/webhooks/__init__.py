"""Webhooks: a tenant's subscriptions to job and sweep ends, and the record of their deliveries."""
