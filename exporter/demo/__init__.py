"""vigil demo."""
