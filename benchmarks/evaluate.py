"""How fast `faco evaluate` scores a checkpoint, against the `lm_eval` CLI on the same task files.

    python benchmarks/evaluate.py MODEL --data-dir DIR                       # arc_easy, boolq, copa; 50 each
    python benchmarks/evaluate.py MODEL --data-dir DIR --benchmarks arc_easy,mmlu --limit 100

MODEL is a model directory (e.g. SmolLM2-135M-Instruct converted from its GGUF); DIR holds
DIR/<benchmark>/<split>.jsonl (docs/benchmark-data.md). Both sides run 0-shot on the same faco-written
task files, each as a new process (start-up, task loading and the model load included), and must
print the same scores. Prints one table: seconds, questions per second, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faco.cli import COUNT  # the `--limit` it passes on to `faco evaluate`, checked the same way


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--benchmarks", default="arc_easy,boolq,copa")
    parser.add_argument("--limit", type=COUNT, default=50)
    args = parser.parse_args()

    from faco.evaluation import benchmarks

    from faco.evaluation import lm_tasks

    work = Path(tempfile.mkdtemp(prefix="faco-bench-eval-"))
    faco_out = work / "faco.json"
    faco_s, _ = timed([sys.executable, "-m", "faco.cli", "evaluate", str(args.model), "--benchmarks", args.benchmarks,
                       "--num-fewshot", "0", "--limit", str(args.limit), "--data-dir", str(args.data_dir),
                       "--output", str(faco_out)])
    ours = json.loads(faco_out.read_text())["results"]
    tasks = [t for spec in benchmarks.resolve(args.benchmarks)
             for t in lm_tasks.write_benchmark_tasks(spec, work / "tasks", 0, args.data_dir)]
    cli_s, _ = timed([sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args",
                      f"pretrained={args.model},dtype=float32", "--device", "cpu", "--tasks", ",".join(tasks),
                      "--include_path", str(work / "tasks"), "--limit", str(args.limit), "--batch_size", "8",
                      "--seed", "0,0,0,0", "--output_path", str(work / "cli")])
    cli = json.loads(next((work / "cli").rglob("results_*.json")).read_text())["results"]
    questions = sum(result["n"] for result in ours.values())
    same = all(cli[f"faco_{name}"][f"{result['metric']},none"] == result["score"] for name, result in ours.items()
               if not benchmarks.get(name).subtasks)
    print(f"{'runner':<12} {'seconds':>8} {'questions/s':>12}")
    print(f"{'faco':<12} {faco_s:>8.1f} {questions / faco_s:>12.2f}")
    print(f"{'lm_eval CLI':<12} {cli_s:>8.1f} {questions / cli_s:>12.2f}")
    print(f"faco / CLI time: {faco_s / cli_s:.2f}; {questions} questions; same scores: {same}")


if __name__ == "__main__":
    main()
