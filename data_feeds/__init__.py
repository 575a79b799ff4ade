"""volsuite data_feeds package."""
