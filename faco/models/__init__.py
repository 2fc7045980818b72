"""faco.models.llama."""
