"""faco.study.study."""
