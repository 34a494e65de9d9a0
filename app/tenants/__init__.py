"""Tenants, their API keys and quotas."""
