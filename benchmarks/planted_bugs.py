"""Does the findings suite catch the bugs it exists to catch? Plant one bug at a time in a copy of the
code and show that `pytest experiments` fails on each (and names which experiments fail).

    python benchmarks/planted_bugs.py                      # smoke preset, all bugs, ~3 min a run on 2 cores
    python benchmarks/planted_bugs.py --bugs epoch1,no-recovery --work /tmp/planted

The copy is the faco package, the experiments and the project files of this checkout. First a clean
run writes the copy's own baseline (the stored baselines are never touched), then a clean rerun in a
fresh cache must pass (a same-seed rerun is bit-identical, so the suite does not fail by itself), then
each bug runs in its own fresh cache, so no artefact built before the bug can hide it. Results go to
<work>/planted_bugs.json: per bug the failing experiment ids and why each failed (its key numbers
moved beyond tolerance, or its verdict flipped).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faco.findings.registry import FINDINGS  # noqa: E402 - from this checkout, like the copy

# name -> (file, text, replacement): each a plausible one-line slip in the study's data flow
BUGS = {
    "epoch1": ("faco/study/study.py",
               "return model.epoch if model.epoch is not None else self.preset.finetune.epochs",
               "return model.epoch if model.epoch is not None else 1  # planted: the first epoch, not the last"),
    "shuffled-gold": ("faco/evaluation/world_tasks.py",
                      "        questions = tuple(Question(f.id, f.domain, f.question, f.options, f.correct) for f in facts)",
                      "        gold = [f.correct for f in facts]\n"
                      "        if spec.name == world.config.domains[0].name:  # planted: one domain's gold labels shuffled\n"
                      "            __import__('random').Random(0).shuffle(gold)\n"
                      "        questions = tuple(Question(f.id, f.domain, f.question, f.options, g) for f, g in zip(facts, gold))"),
    "reversed-cr": ("faco/study/stages.py", "examples = corrupted_examples(study.items, ratio, preset.seed)",
                    "examples = corrupted_examples(study.items, 100 - ratio, preset.seed)  # planted: CR reversed"),
    "no-recovery": ("faco/study/study.py", '            return Request.of("recover", base=model.base)\n',
                    '            return Request.of("finetune", base=model.base, ratio=100)  # planted: recovery skipped\n'),
    "base-scored": ("faco/study/study.py", "        if model.ratio is None:\n",
                    "        if True:  # planted: the base scored instead of the tuned model\n"),
}
COPIED = ("faco", "experiments", "conftest.py", "pyproject.toml")


def copy_project(target: Path) -> None:
    target.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.json", "*.lock"))
        else:
            shutil.copy2(source, target / name)


def plant(project: Path, bug: str) -> None:
    filename, text, replacement = BUGS[bug]
    path = project / filename
    source = path.read_text()
    if source.count(text) != 1:
        raise SystemExit(f"planted_bugs: {bug}: {filename} no longer contains its line once; update BUGS")
    path.write_text(source.replace(text, replacement))


def run_suite(project: Path, name: str, preset: str, work: Path) -> dict:
    """`pytest experiments` in `project` with its own cache; the outcome of every experiment, from JUnit XML."""
    junit = work / f"{name}.xml"
    env = {**os.environ, "PYTHONPATH": str(project), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "experiments", "--faco-preset", preset, "-p", "no:cacheprovider",
               "-q", "--faco-cache", str(work / f"cache-{name}"), "--faco-reports", str(work / f"reports-{name}"),
               f"--junitxml={junit}"]
    started = time.monotonic()
    with open(work / f"{name}.log", "w") as log:
        status = subprocess.run(command, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    return {"exit": status, "seconds": round(time.monotonic() - started), "failed": failures(junit)}


def failures(junit: Path) -> dict[str, str]:
    """{experiment id: why} for every failed experiment: "numbers" (key numbers beyond tolerance),
    "verdict" (a finding flipped: an assertion or a strict xpass), "baseline" (written), else "error"."""
    functions = {spec.experiment.split("::")[1]: spec.name for spec in FINDINGS}
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is None:
            continue
        function, _, params = case.get("name").partition("[")
        finding_id = f"{functions.get(function, function)}-{params.rstrip(']')}" if params else function
        message = (problem.get("message") or "") + (problem.text or "")
        out[finding_id] = ("numbers" if "moved beyond their tolerance" in message else
                           "verdict" if "does not hold" in message or "XPASS(strict)" in message else
                           "baseline" if "baseline for" in message else "error")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--bugs", default=",".join(BUGS), help=f"comma list of {', '.join(BUGS)}")
    parser.add_argument("--work", type=Path, default=None, help="working directory (default: a new temp dir)")
    args = parser.parse_args(argv)
    bugs = [b for b in args.bugs.split(",") if b]
    unknown = set(bugs) - set(BUGS)
    if unknown:
        parser.error(f"unknown bugs {sorted(unknown)}; known: {', '.join(BUGS)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="faco-planted-"))
    clean = work / "clean"
    copy_project(clean)
    for bug in bugs:  # every patch must apply before anything runs
        plant_check = work / "check"
        shutil.copytree(clean, plant_check)
        plant(plant_check, bug)
        shutil.rmtree(plant_check)
    results = {"preset": args.preset, "baseline": run_suite(clean, "baseline", args.preset, work)}
    results["rerun"] = run_suite(clean, "rerun", args.preset, work)
    print(f"clean rerun in a fresh cache: {len(results['rerun']['failed'])} failed ({results['rerun']['seconds']} s)")
    for bug in bugs:
        project = work / bug
        shutil.copytree(clean, project)
        plant(project, bug)
        results[bug] = run_suite(project, bug, args.preset, work)
        failed = results[bug]["failed"]
        kinds = {k: list(failed.values()).count(k) for k in ("numbers", "verdict", "error") if k in failed.values()}
        print(f"{bug:<14} {len(failed):>3} experiments fail {kinds} ({results[bug]['seconds']} s)")
        (work / "planted_bugs.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    caught = all(results[bug]["failed"] for bug in bugs) and not results["rerun"]["failed"]
    print(f"{'every planted bug fails the suite' if caught else 'NOT CAUGHT'}; details: {work / 'planted_bugs.json'}")
    return 0 if caught else 1


if __name__ == "__main__":
    sys.exit(main())
