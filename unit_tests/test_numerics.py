"""Pinned CPU numerics: training gives bit-identical weights whatever the thread count, so a serial run,
`pytest -n 2` and another CI machine reproduce the stored baseline exactly.

    python -m pytest unit_tests/test_numerics.py -q
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from faco.core import numerics
from faco.config.schema import ModelConfig
from faco.models.llama import build_model, build_tokenizer

pytestmark = pytest.mark.skipif(numerics.MODE != "pinned",
                                reason="numerics not pinned here (FACO_NUMERICS=native or not x86-64)")


def trained_weights(threads: int, steps: int = 4) -> torch.Tensor:
    """A tiny LLaMA after a few AdamW steps on seeded random tokens, with `threads` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tokenizer = build_tokenizer([" ".join(f"w{i}" for i in range(200))])
        model = build_model(ModelConfig(), tokenizer, seed=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(1)
        for _ in range(steps):
            ids = torch.randint(0, len(tokenizer), (32, 64), generator=generator)  # the tiny preset's batch
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return torch.cat([p.detach().flatten() for p in model.parameters()])
    finally:
        torch.set_num_threads(before)


def test_this_process_is_pinned():
    described = numerics.describe()
    assert described["reproducible"], described
    assert described["cpu_capability"] == numerics.EXPECTED_CAPABILITY


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to compare thread counts")
def test_thread_count_does_not_change_the_weights():
    one, two = trained_weights(1), trained_weights(2)
    assert torch.equal(one, two), f"max difference {(one - two).abs().max().item():.3g}"


def test_native_mode_is_left_alone():
    """FACO_NUMERICS=native: faco sets no pin (a user who wants the machine's fastest kernels)."""
    code = "import os, faco; print(os.environ.get('MKL_CBWR', '-'), faco.core.numerics.MODE)"
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED} | {"FACO_NUMERICS": "native"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["-", "native"]


def test_cache_keys_see_a_users_own_setting(monkeypatch):
    """settings() goes into the training stages' cache keys: another MKL branch must not hit pinned entries."""
    pinned = numerics.settings()
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    assert numerics.settings() != pinned and numerics.settings()["MKL_CBWR"] == "COMPATIBLE"
