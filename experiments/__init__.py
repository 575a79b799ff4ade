"""volsuite experiments package."""
