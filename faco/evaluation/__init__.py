"""faco.evaluation.runner."""
