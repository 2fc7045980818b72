"""How long `pytest experiments` takes cold and warm, where a cold run's time goes (per stage), and what
faco's Trainer costs against a plain loop.

    python benchmarks/pipeline.py                 # cold + warm run of the tiny preset (3 seeds), trainer ratio
    python benchmarks/pipeline.py --workers 1     # the same built serially, in the test process
    python benchmarks/pipeline.py --seed 0        # one seed
    python benchmarks/pipeline.py --preset smoke  # the same in seconds
    python benchmarks/pipeline.py --skip-runs     # only the trainer-vs-plain-loop ratio
    python benchmarks/pipeline.py --cache DIR     # keep the runs' cache (e.g. to sweep from it afterwards)
    python benchmarks/pipeline.py --reports DIR   # keep the runs' reports (the key numbers in findings.json)
    python benchmarks/pipeline.py --against REF   # also the cold run of the code at git REF, first; the ratio

Prints tables. The cold run uses an empty cache (a temporary one unless --cache); the warm run reuses
it and must train and evaluate nothing (counted from the cache's "build" log lines and the trainer's
step lines); the trainer ratio fine-tunes seed 0's weakest base from that cache. CPU seconds count the
run and every process it waited for (the parallel workers): on a machine shared with other work, wall
time grows with the load and CPU time much less. Measured figures: benchmarks/pipeline.md.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faco  # noqa: F401 - first: it pins the CPU numerics, which torch reads once, on import
import torch

ROOT = Path(__file__).resolve().parents[1]


def run_experiments(preset: str, cache: Path, reports: Path, extra: list[str], root: Path = ROOT) -> dict:
    """One `pytest experiments` run of the code in `root` (this checkout, or a worktree of another commit)."""
    command = [sys.executable, "-m", "pytest", "experiments", "-q", "-p", "no:cacheprovider", f"--faco-preset={preset}",
               f"--faco-cache={cache}", f"--faco-reports={reports}", "-o", "log_cli=true", "-o", "log_cli_level=INFO",
               *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(command, cwd=root, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log = out.stdout + out.stderr
    return {
        "seconds": seconds,
        "cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "stages": stage_breakdown(log),
        "builds": len(re.findall(r"INFO faco\.core\.cache: build ", log)),
        "train_steps_logged": len(re.findall(r": step \d+/\d+ loss", log)),
        "summary": log.strip().splitlines()[-1] if log.strip() else "",
    }


def stage_breakdown(log: str) -> dict[str, tuple[int, float]]:
    """{stage: (builds, seconds)} from the cache's "built <stage>/<key>: ... (took X s)" lines. Under
    parallel workers the stages overlap, so their sum exceeds the wall time."""
    out: dict[str, tuple[int, float]] = {}
    for stage, took in re.findall(r"faco\.core\.cache: built (\w+)/\w+: .* \(took ([0-9.]+) s\)", log):
        count, total = out.get(stage, (0, 0.0))
        out[stage] = (count + 1, total + float(took))
    return out


def trainer_vs_plain(preset_name: str, steps: int, cache: Path) -> dict:
    """Fine-tune the same base on the same examples for `steps` steps: Trainer (faco) vs a plain loop. The
    base comes from `cache` (the runs' cache: already built there, else pre-trained now)."""
    from faco.models import llama
    from faco.training import trainer
    from faco.core.cache import Cache
    from faco.config.load import load_preset
    from faco.data.corruption import corrupted_examples
    from faco.study.study import Study, untuned

    preset = load_preset(preset_name)
    with tempfile.TemporaryDirectory() as tmp:
        study = Study(preset, Cache(cache))
        base = study.checkpoint(untuned(preset.bases[0].name)).path
        batch = preset.finetune.batch_size
        examples = corrupted_examples(study.items, 50, preset.seed)[: steps * batch]
        start = time.perf_counter()
        trainer.finetune(base, examples, preset.finetune, 1, preset.seed, Path(tmp) / "trainer", "benchmark")
        trainer_seconds = time.perf_counter() - start

        model, tokenizer = llama.load(base)
        dataset = trainer.Examples(examples, tokenizer, model.config.max_position_embeddings)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, collate_fn=dataset.collate,
                                             generator=torch.Generator().manual_seed(preset.seed))
        optimizer = torch.optim.AdamW(model.parameters(), lr=preset.finetune.lr, fused=True)
        model.train()
        start = time.perf_counter()
        for inputs in loader:
            model(**inputs).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        plain_seconds = time.perf_counter() - start
    return {"steps": len(loader), "trainer_seconds": trainer_seconds, "plain_seconds": plain_seconds,
            "ratio": plain_seconds / trainer_seconds}


def run_rows(cold: dict, warm: dict) -> list[tuple[str, str, str]]:
    rows = []
    for name, run in (("cold", cold), ("warm", warm)):
        rows.append((f"pytest experiments ({name})", f"{run['seconds']:.0f} s",
                     f"{run['cpu_seconds']:.0f} CPU s; {run['builds']} cache builds, "
                     f"{run['train_steps_logged']} training log lines; {run['summary']}"))
    for stage, (count, seconds) in sorted(cold["stages"].items(), key=lambda kv: -kv[1][1]):
        rows.append((f"  cold stage {stage}", f"{seconds:.0f} s", f"{count} builds, {seconds / count:.1f} s each"))
    return rows


def against(ref: str, preset: str, extra: list[str], tmp: Path) -> dict:
    """The cold run of the code at git `ref` (a detached worktree, removed after), in its own cache."""
    tree = tmp / "against"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True, capture_output=True)
    try:
        return run_experiments(preset, tmp / "against-cache", tmp / "against-reports", extra, tree)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--skip-runs", action="store_true", help="only measure the trainer ratio")
    parser.add_argument("--steps", type=int, default=40, help="fine-tuning steps for the trainer ratio")
    parser.add_argument("--seed", type=int, default=None, help="one seed instead of the preset's seeds")
    parser.add_argument("--workers", type=int, default=None, help="--faco-workers (1 = serial)")
    parser.add_argument("--reports", type=Path, default=None,
                        help="keep the runs' reports here (findings.json: the key numbers); default: a temporary one")
    parser.add_argument("--against", metavar="REF", help="also run the code at this git commit cold, first (its "
                        "own cache); prints both and the ratio, on the same machine in one run")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep the runs' cache here (must be empty or absent: the cold run starts empty); "
                             "default: a temporary directory")
    args = parser.parse_args()
    extra = ([f"--faco-seed={args.seed}"] if args.seed is not None else []) + (
        [f"--faco-workers={args.workers}"] if args.workers else [])
    from faco.models.llama import set_threads

    threads = set_threads(0)
    if args.cache is not None and args.cache.exists() and any(args.cache.iterdir()):
        parser.error(f"--cache {args.cache}: not empty; a cold run needs an empty cache")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "cache"
        if not args.skip_runs:
            reports = args.reports or Path(tmp) / "reports"
            before = against(args.against, args.preset, extra, Path(tmp)) if args.against else None
            cold = run_experiments(args.preset, cache, reports, extra)
            warm = run_experiments(args.preset, cache, reports, extra)
            rows += run_rows(cold, warm)
            if before:
                rows.append((f"pytest experiments (cold, {args.against})", f"{before['seconds']:.0f} s",
                             f"{before['cpu_seconds']:.0f} CPU s; {before['summary']}"))
                rows.append((f"cold wall ratio this / {args.against}", f"{cold['seconds'] / before['seconds']:.2f}",
                             f"CPU ratio {cold['cpu_seconds'] / before['cpu_seconds']:.2f}; < 1: this is faster"))
        ratio = trainer_vs_plain(args.preset, args.steps, cache)
    rows.append(("fine-tuning, faco Trainer", f"{ratio['trainer_seconds']:.1f} s", f"{ratio['steps']} steps (incl. checkpoint)"))
    rows.append(("fine-tuning, plain torch loop", f"{ratio['plain_seconds']:.1f} s", f"{ratio['steps']} steps"))
    rows.append(("throughput ratio Trainer / plain", f"{ratio['ratio']:.2f}", "1.00 = no overhead"))
    print(f"\npreset {args.preset}, {threads} torch thread(s)\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'value':>8}  notes")
    for what, value, notes in rows:
        print(f"{what:<{width}}  {value:>8}  {notes}")


if __name__ == "__main__":
    main()
