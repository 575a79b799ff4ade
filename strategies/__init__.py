"""volsuite strategies package."""
