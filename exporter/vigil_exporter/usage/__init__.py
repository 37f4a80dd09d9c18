"""Tenant usage reports read from Prometheus: `vigil usage` and `GET /api/v1/usage-metrics`."""
