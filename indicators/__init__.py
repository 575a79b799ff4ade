"""volsuite indicators package."""
