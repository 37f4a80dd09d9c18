"""Vigil: a Prometheus exporter and observability bundle for an application stack."""

__version__ = "0.1.0"
