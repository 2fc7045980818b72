"""faco.config.schema."""
