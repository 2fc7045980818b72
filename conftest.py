"""Root conftest: kept thin. faco's fixtures and options come from its pytest plugin (faco/plugin.py,
registered through the `pytest11` entry point); here only what every test in this repo needs."""

import os

# No machine here reaches the Hugging Face hub: fail fast instead of hanging on a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
