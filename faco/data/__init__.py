"""faco.data."""
