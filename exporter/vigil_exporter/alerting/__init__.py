"""Alertmanager integration: the log receiver and `vigil alerts ...`."""
