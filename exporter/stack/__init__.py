"""vigil stack."""
