"""Logging that every faco process sets the same way: the pytest process and the pool workers that build a
study's stages as jobs (faco.study.execution) quiet the same libraries, so a run logs the same lines
however many processes built it.
"""

from __future__ import annotations

import logging

# Libraries whose INFO lines (task indexing, per-request, lock chatter) would bury faco's progress lines.
NOISY = ("lm_eval", "lm-eval", "transformers", "datasets", "accelerate", "filelock")


def quiet_noisy_libraries() -> None:
    """Warnings and errors only from the NOISY libraries' loggers."""
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
