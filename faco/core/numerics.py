"""Pinned CPU numerics: the same config gives the same numbers on any x86-64 machine and thread count.

The tiny models' training is chaotic: a last-bit difference in one matrix product grows into a
different model, as different as another seed. Measured here (20 training steps of the tiny LLaMA):
the default numerics give other weights with 1 vs 2 threads, with MKL's AVX2 vs AVX-512 kernels, and
with ATen's AVX2 vs AVX-512 kernels, so a baseline written on one CI machine failed on the next. With
MKL's conditional numerical reproducibility pinned to its AVX2 branch in strict mode and ATen's
kernels pinned to AVX2, all of these give bit-identical weights, at ~1.2x the time of the default.

The pins are environment variables that MKL, oneDNN and ATen read once, at their first use, so they
are set on `import faco` (before torch, which faco imports lazily). `FACO_NUMERICS=native` leaves the
machine's defaults (faster, not reproducible across machines). A GPU run is not affected.
"""

from __future__ import annotations

import os
import platform
import sys

PINNED = {
    "MKL_CBWR": "AVX2,STRICT",  # MKL: the AVX2 code path on every CPU that has it; strict = thread-count independent
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels (attention, elementwise, optimizer)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN, where torch routes an op through it
}
EXPECTED_CAPABILITY = "AVX2"


def pin() -> str:
    """Set the pins unless the user chose otherwise; returns the numerics mode ("pinned" or "native")."""
    if os.environ.get("FACO_NUMERICS", "pinned") == "native" or platform.machine().lower() not in ("x86_64", "amd64"):
        return "native"
    for name, value in PINNED.items():
        os.environ.setdefault(name, value)
    return "pinned"


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity mask where the platform has one (a container's
    or `taskset`'s limit, not the machine's count), else the machine's. Thread and worker counts split these;
    with the pins above, how they are split changes no number."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def settings() -> dict[str, str]:
    """The numerics settings in force, for cache keys: an artefact is reused only under the same ones
    (also when a user set one of the variables to a value of their own)."""
    return {"mode": MODE, **{name: os.environ.get(name, "") for name in PINNED}}


def describe() -> dict[str, str | bool]:
    """What the numbers of this process were computed with (for provenance): the settings in force,
    torch's kernel level, and whether torch had been loaded before the pins were set (then they do nothing)."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    reproducible = MODE == "pinned" and not TORCH_LOADED_FIRST and capability == EXPECTED_CAPABILITY
    return {**settings(), "cpu_capability": capability, "reproducible": reproducible}


TORCH_LOADED_FIRST = "torch" in sys.modules  # then MKL and ATen have read their settings already
MODE = pin()
