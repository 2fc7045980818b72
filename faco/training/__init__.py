"""faco.training.trainer."""
