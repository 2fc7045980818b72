"""faco.core."""
