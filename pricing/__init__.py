"""volsuite pricing package."""
