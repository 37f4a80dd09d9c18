"""Service level objectives: their declaration (spec) and `vigil slo status`."""
