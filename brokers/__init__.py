"""volsuite brokers package."""
