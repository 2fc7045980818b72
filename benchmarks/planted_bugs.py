"""Does the findings suite catch the bugs it exists to catch? Plant one bug at a time in a copy of the
code and show that `pytest experiments` fails on each, on the experiments of the finding it is aimed at.

    python benchmarks/planted_bugs.py                      # tiny preset at seed 0, every bug (see below)
    python benchmarks/planted_bugs.py --bugs epoch1,no-recovery --work /tmp/planted
    python benchmarks/planted_bugs.py --cache-from WARM    # each run starts from a copy of a warm cache

The preset is the tiny one at one seed: there every finding's numbers carry information (the bases know
their facts, ~1,350 held-out questions; on the smoke preset every lying number is 0.500 on 8 questions
with bases at chance, so a lying bug changed nothing it read). One cold run of it takes about 7 min on
two cores, so all bugs cold take (2 + bugs) x that; `--cache-from` a warm cache of the same code starts
each run from a copy of it, and only what a bug's edit re-keys is rebuilt (the cache keys cover each
stage's code: faco.study.stages), in minutes; a bug in code no key covers (FRESH_ONLY) still starts cold. task_sensitivity has no bug here: the tiny world has no
commonsense benchmark, so the finding is skipped there; it runs on presets with registry benchmarks.

The copy is the faco package, the experiments and the project files of this checkout. First a clean
run writes the copy's own baseline (the stored baselines are never touched), then a clean rerun in a
fresh cache must pass (a same-seed rerun is bit-identical, so the suite does not fail by itself), then
each bug runs in its own cache, so no artefact built before the bug can hide it. Results go to
<work>/planted_bugs.json: per bug the failing experiment ids and why each failed (its key numbers
moved beyond tolerance, or its verdict flipped), and whether its target finding failed.
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
    "last-epoch": ("faco/study/study.py",
                   "return model.epoch if model.epoch is not None else self.preset.finetune.epochs",
                   "return self.preset.finetune.epochs  # planted: every epoch read as the last"),
    "shuffled-gold": ("faco/evaluation/world_tasks.py",
                      "        questions = tuple(Question(f.id, f.domain, f.question, f.options, f.correct) for f in facts)",
                      "        gold = [f.correct for f in facts]\n"
                      "        if spec.name == world.config.domains[0].name:  # planted: one domain's gold labels shuffled\n"
                      "            __import__('random').Random(0).shuffle(gold)\n"
                      "        questions = tuple(Question(f.id, f.domain, f.question, f.options, g) for f, g in zip(facts, gold))"),
    "reversed-cr": ("faco/study/stages.py",
                    "    _launch(study, request, corrupted_examples(study.items, ratio, study.preset.seed), out)\n",
                    "    _launch(study, request, corrupted_examples(study.items, 100 - ratio, study.preset.seed), out)"
                    "  # planted: CR reversed\n"),
    "no-recovery": ("faco/study/study.py", '            return (Request.of("recover", base=model.base) if model.share == 100\n',
                    '            return (Request.of("finetune", base=model.base, ratio=100) if model.share == 100  # planted\n'),
    "base-scored": ("faco/study/study.py", "        if model.ratio is None:\n",
                    "        if True:  # planted: the base scored instead of the tuned model\n"),
    "one-base-tuned": ("faco/study/study.py", '        return Request.of("finetune", base=model.base, ratio=model.ratio)',
                       '        return Request.of("finetune", base=self.preset.bases[0].name, ratio=model.ratio)'
                       "  # planted: every base's fine-tune is the first base's"),
    "chance-off": ("faco/evaluation/groups.py", "        return 1 / preset.world.options",
                   "        return 1 / (preset.world.options - 1)  # planted: chance of one option fewer"),
    "familiar-as-instruction": ("faco/evaluation/world_tasks.py", '    "familiar": familiar_prompt,',
                                '    "familiar": instruction_prompt,  # planted: the base asked in the tuned layout'),
}
# the findings each bug is aimed at: each must have a failing experiment
TARGETS = {"epoch1": ("correlation",), "last-epoch": ("longer",), "shuffled-gold": ("knowledge",),
           "reversed-cr": ("loss", "correlation"), "no-recovery": ("recovery",), "base-scored": ("correlation",),
           "one-base-tuned": ("sensitivity", "sensitivity_majority", "sensitivity_cr0", "sensitivity_cr100"),
           "chance-off": ("lying", "lying_weak"), "familiar-as-instruction": ("knowledge",)}
# bugs in a stage's build function whose module is in no stage's code key (faco/study/stages.py): a warm
# cache would serve the artefacts the unpatched code built, so these always start from an empty cache
FRESH_ONLY = {"reversed-cr"}
# findings no bug here can reach on the tiny preset, and why
UNREACHED = {"task_sensitivity": "skipped on the tiny world (every domain is knowledge)",
             **{spec.name: f"beyond the paper: runs only with `{spec.options}`, which the harness does not select"
                for spec in FINDINGS if spec.options}}
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


def run_suite(project: Path, name: str, preset: str, work: Path, seeds: str | None = None,
              cache_from: Path | None = None) -> dict:
    """`pytest experiments` in `project` with its own cache (a copy of `cache_from`, or empty); the outcome
    of every experiment, from JUnit XML."""
    junit = work / f"{name}.xml"
    cache = work / f"cache-{name}"
    if cache_from is not None:
        shutil.copytree(cache_from, cache, symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(project), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "experiments", "--faco-preset", preset, "-p", "no:cacheprovider",
               "-q", "--faco-cache", str(cache), "--faco-reports", str(work / f"reports-{name}"),
               f"--junitxml={junit}", *(["--faco-seeds", seeds] if seeds else [])]
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
        finding = functions.get(function, function)
        finding_id = f"{finding}-{params.rstrip(']')}" if params else finding
        message = (problem.get("message") or "") + (problem.text or "")
        out[finding_id] = ("numbers" if "moved beyond their tolerance" in message else
                           "verdict" if "does not hold" in message or "XPASS(strict)" in message else
                           "baseline" if "baseline for" in message else "error")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--seeds", default="0", help="--faco-seeds of every run ('' for the preset's own)")
    parser.add_argument("--cache-from", type=Path, default=None,
                        help="start each run from a copy of this warm cache (of the same code) instead of an empty one")
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
    runs = {"preset": args.preset, "work": work, "seeds": args.seeds or None, "cache_from": args.cache_from}
    results = {"preset": args.preset, "seeds": args.seeds, "unreached": UNREACHED,
               "baseline": run_suite(clean, "baseline", **runs)}
    results["rerun"] = run_suite(clean, "rerun", **runs)
    print(f"clean rerun in a fresh cache: {len(results['rerun']['failed'])} failed ({results['rerun']['seconds']} s)")
    for bug in bugs:
        project = work / bug
        shutil.copytree(clean, project)
        plant(project, bug)
        results[bug] = run_suite(project, bug, **{**runs, **({"cache_from": None} if bug in FRESH_ONLY else {})})
        failed = results[bug]["failed"]
        missed = [t for t in TARGETS[bug] if not any(f == t or f.startswith(f"{t}-") for f in failed)]
        results[bug].update(targets=list(TARGETS[bug]), missed=missed, target_failed=not missed)
        kinds = {k: list(failed.values()).count(k) for k in ("numbers", "verdict", "error") if k in failed.values()}
        print(f"{bug:<24} {len(failed):>3} experiments fail {kinds}; "
              f"{'every target fails' if not missed else f'NOT FAILING: {missed}'} ({results[bug]['seconds']} s)")
        (work / "planted_bugs.json").write_text(json.dumps(results, indent=1, sort_keys=True, default=str) + "\n")
    caught = all(results[bug]["target_failed"] for bug in bugs) and not results["rerun"]["failed"]
    print(f"{'every planted bug fails the suite' if caught else 'NOT CAUGHT'}; details: {work / 'planted_bugs.json'}")
    return 0 if caught else 1


if __name__ == "__main__":
    sys.exit(main())
