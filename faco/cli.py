"""`faco` command line; each subcommand registers in `parser`:

    faco build-dataset ...   # the real FACO dataset: nine sources -> TRUE and FALSE chains by a teacher
    faco report              # rebuild reports/<run>/index.html from stored results
    faco tolerances ...      # re-apply the tolerance rule to a baseline with measured noise
    faco evaluate MODEL      # score one checkpoint on the paper's benchmarks through lm-eval
    faco status              # what a run needs and whether it is cached
    faco build               # build it as jobs: local processes, or Slurm (--executor slurm)
    faco plan                # what a preset's grid costs: runs, memory per GPU, disk, GPU-hours; refuses a misfit
    faco verify              # re-hash every cache entry; lists the corrupt ones (exit 1 if any)

An expected failure (unknown source, malformed row, server down, bad flag value) prints one line on
stderr and exits with 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from faco.core.cache import Cache
from faco.config.load import load_preset, override
from faco.config.schema import ConfigError, Preset
from faco.models import checkpoints
from faco.data.build import BuildConfig, build_dataset, dry_run
from faco.data.items import ItemError
from faco.data.prompts import PROMPT_SETS
from faco.data.sources import SOURCES, SourceError
from faco.data.teacher import TeacherConfig, TeacherError, load_prices
from faco.evaluation import benchmarks, lm_tasks
from faco.evaluation.benchmark_runs import evaluate_benchmarks
from faco import plugin
from faco.findings import records, registry
from faco.report import browser
from faco.report.html import ReportError, build_report, run_dirs
from faco.study import costs, execution, study
from faco.study.reads import Read

EXIT_USAGE = 2


def number(kind: type[int] | type[float], low: float, *, strict: bool = False) -> Callable[[str], float]:
    """An argparse type for a finite `kind` >= `low` (> `low` when `strict`). A value out of range is then
    argparse's one line naming the flag ("argument --limit: expected an integer >= 1, got '0'") instead of
    a traceback, or a silent no-op, deep inside a run."""
    what = f"{'an integer' if kind is int else 'a number'} {'>' if strict else '>='} {low:g}"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > low if strict else value >= low)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


COUNT = number(int, 1)  # how many of something: questions, items, requests, tries
NON_NEGATIVE_INT = number(int, 0)  # seeds (numpy's take no negative one), retries, shots
POSITIVE_FLOAT = number(float, 0, strict=True)  # seconds to wait for a reply
NON_NEGATIVE_FLOAT = number(float, 0)  # temperature, a longest wait


def _shots(text: str) -> int | None:
    """--num-fewshot: a number of shots, or "paper" (None) for each benchmark's own."""
    if text == "paper":
        return None
    try:
        return NON_NEGATIVE_INT(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number of shots >= 0 or 'paper', got {text!r}") from None


def _source_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name.strip(), Path(path)


def add_build_dataset(commands: argparse._SubParsersAction) -> None:
    build, teacher = BuildConfig(out=Path(".")), TeacherConfig()
    parser = commands.add_parser("build-dataset", help="build the real FACO dataset through a teacher model",
                                 description="Nine source datasets -> FACO items with a TRUE and a FALSE chain "
                                             "written by a teacher behind an OpenAI-compatible API. The key comes "
                                             "from FACO_TEACHER_API_KEY (or OPENAI_API_KEY) only.")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma list (default: all nine)")
    parser.add_argument("--data-dir", type=Path, help="local copies of the sources, laid out as docs/real-dataset.md says (default: the hub)")
    parser.add_argument("--source-path", type=_source_path, action="append", default=[], metavar="NAME=PATH",
                        help="a local file or directory for one source (repeatable)")
    parser.add_argument("--per-source", type=COUNT, default=build.per_source, help="items sampled per source")
    parser.add_argument("--seed", type=NON_NEGATIVE_INT, default=build.seed)
    parser.add_argument("--out", type=Path, required=True, help="output dataset directory")
    parser.add_argument("--base-url", default=teacher.base_url)
    parser.add_argument("--model", default=teacher.model)
    parser.add_argument("--concurrency", type=COUNT, default=teacher.concurrency)
    parser.add_argument("--max-tokens", type=COUNT, default=teacher.max_tokens)
    parser.add_argument("--temperature", type=NON_NEGATIVE_FLOAT, default=teacher.temperature)
    parser.add_argument("--timeout", type=POSITIVE_FLOAT, default=teacher.timeout_s, help="seconds per request")
    parser.add_argument("--max-retries", type=NON_NEGATIVE_INT, default=teacher.max_retries)
    parser.add_argument("--false-tries", type=COUNT, default=teacher.false_tries)
    parser.add_argument("--retry-after-max", type=NON_NEGATIVE_FLOAT, default=teacher.retry_after_max_s,
                        help="longest Retry-After honoured, in seconds (default: %(default)s)")
    parser.add_argument("--prompts", choices=sorted(PROMPT_SETS), default=teacher.prompts,
                        help="the teacher's prompt set (default: %(default)s); part of the reply cache key")
    parser.add_argument("--prices", type=Path, help='JSON {"input": X, "output": Y} per 1M tokens (or per model)')
    parser.add_argument("--dry-run", action="store_true", help="print the requests and cost estimate, send nothing")
    parser.add_argument("--lenient", action="store_true", help="skip and count malformed rows")
    parser.add_argument("--reply-cache", type=Path, help="SQLite reply cache (default: under the faco cache dir)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=run_build_dataset)


def run_build_dataset(args: argparse.Namespace) -> int:
    config = BuildConfig(out=args.out, sources=tuple(s.strip() for s in args.sources.split(",") if s.strip()),
                         data_dir=args.data_dir, source_paths=dict(args.source_path), per_source=args.per_source,
                         seed=args.seed, lenient=args.lenient, reply_cache=args.reply_cache)
    teacher = TeacherConfig(base_url=args.base_url, model=args.model, concurrency=args.concurrency,
                            max_tokens=args.max_tokens, temperature=args.temperature, timeout_s=args.timeout,
                            max_retries=args.max_retries, false_tries=args.false_tries,
                            retry_after_max_s=args.retry_after_max, prompts=args.prompts)
    prices = load_prices(args.prices, args.model) if args.prices else None
    if args.dry_run:
        print(json.dumps(dry_run(config, teacher, prices), indent=2))
        return 0
    summary = build_dataset(config, teacher, prices, progress=not args.no_progress)
    print(json.dumps({k: summary[k] for k in ("items", "dropped", "requests", "tokens", "cost")}, indent=2))
    print(f"wrote {summary['items']} items to {args.out} (summary: {args.out / 'summary.json'})")
    return 0


def add_report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", help="rebuild reports/<run>/index.html from stored results",
                                 description="Rebuild the self-contained HTML report (Table 1, Figures 2-11, findings, "
                                             "provenance) from reports/<run>/findings.json; trains and evaluates "
                                             "nothing.")
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="reports directory (default: reports)")
    parser.add_argument("--run", dest="run_name", metavar="NAME",
                        help="one run, e.g. tiny or tiny-seeds0-1-2 (default: every run with a findings.json)")
    parser.add_argument("--browser", action="store_true",
                        help="render each report in headless Chromium at 1280 px and fail on sideways scrolling, an "
                             "image that did not load, an in-page link to nowhere or a script error; saves "
                             "screenshot.png beside each report")
    parser.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    try:
        dirs = [args.reports / args.run_name] if args.run_name else run_dirs(args.reports)
    except ReportError as error:
        print(f"faco report: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    status = 0
    for run_dir in dirs:  # one unreadable run does not keep the others from being rebuilt
        try:
            print(build_report(run_dir))
        except ReportError as error:
            print(f"faco report: error: {error}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        if args.browser:
            status = max(status, _in_browser(run_dir))
    return status


def _in_browser(run_dir: Path) -> int:
    """1 when a reader's browser finds a problem on the run's page (each printed), else 0."""
    try:
        rendered = browser.check(run_dir)
    except browser.BrowserError as error:
        print(f"faco report: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    for problem in rendered.problems:
        print(f"faco report: {run_dir.name}: {problem}", file=sys.stderr)
    state = "fits" if not rendered.problems else f"{len(rendered.problems)} problem(s)"
    print(f"{run_dir.name}: {state} in Chromium at {rendered.width} px ({rendered.height} px tall); {rendered.screenshot}")
    return 1 if rendered.problems else 0


def add_tolerances(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("tolerances", help="re-apply the tolerance rule to a baseline with measured noise",
                                 description="Every key number of the baseline gets tolerance = max(3 x its same-seed "
                                             "rerun noise, 0.0005): with pinned numerics a rerun is bit-identical "
                                             "(noise 0), else measure it with --rerun. A number whose tolerance would "
                                             "exceed half its plausible range is marked unchecked with its noise. "
                                             "--seeds-run adds each number's seed-to-seed noise, for scale.")
    parser.add_argument("--baseline", type=Path, required=True, help="e.g. experiments/baselines/tiny.json")
    parser.add_argument("--seeds-run", type=Path, metavar="DIR",
                        help="reports/<run> of a multi-seed run (pytest experiments --faco-seeds 0,1,2)")
    parser.add_argument("--rerun", type=Path, metavar="DIR",
                        help="reports/<run> of a same-seed rerun (another machine, -n 2, FACO_NUMERICS=native)")
    parser.set_defaults(run=run_tolerances)


def run_tolerances(args: argparse.Namespace) -> int:
    try:
        if not args.baseline.is_file():  # re-applying the rule to no baseline would write an empty one
            raise records.BaselineError(f"{args.baseline}: no such baseline (the first `pytest experiments` "
                                        "run of a preset writes it)")
        baseline = records.load_baseline(args.baseline)
        seeds = records.seed_noise(_findings_of(args.seeds_run)) if args.seeds_run else {}
        reruns = records.rerun_noise(baseline, _findings_of(args.rerun)) if args.rerun else None
    except records.BaselineError as error:
        print(f"faco tolerances: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.seeds_run and not seeds:
        print(f"faco tolerances: error: {args.seeds_run} has no key numbers from two or more seeds", file=sys.stderr)
        return EXIT_USAGE
    source = ", ".join(f"{what} {path}" for what, path in (("seeds", args.seeds_run), ("rerun", args.rerun)) if path)
    updated = records.apply_tolerances(args.baseline, seeds, reruns, source or "pinned numerics")
    data = records.read_json(args.baseline, {})
    off = sum(len(records.unchecked(entry)) for entry in data["findings"].values())
    print(f"{args.baseline}: tolerances for {updated} finding(s) ({off} key number(s) unchecked) "
          f"from {source or 'pinned numerics (rerun noise 0)'}")
    return 0


def _findings_of(run_dir: Path) -> dict[str, Any]:
    source = run_dir / "findings.json"
    stored = records.read_json(source, None)
    if stored is None:
        raise records.BaselineError(f"{source}: no such file (run pytest experiments first)")
    return stored["findings"]


def add_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="score one checkpoint on the paper's benchmarks through lm-eval",
                                 description="lm-eval's own tasks (prompts, few-shot sampling, metrics) with the "
                                             "paper's shots; offline with --data-dir. Prints a table, writes the "
                                             "results with per-question records.")
    parser.add_argument("model", help="a local model directory, a hub id, or a .gguf file (converted once, cached)")
    parser.add_argument("--benchmarks", default="paper",
                        help="'paper' (all) or a comma list of the paper's benchmark names")
    parser.add_argument("--num-fewshot", type=_shots, default="paper", metavar="K|paper",
                        help="shots for every benchmark, or 'paper' for the paper's (ARC 25, MMLU 5, others 10)")
    parser.add_argument("--limit", type=COUNT, help="at most N questions per lm-eval task (each MMLU subject)")
    parser.add_argument("--data-dir", type=Path, help="local files DIR/<benchmark>/<split>.jsonl instead of the hub")
    parser.add_argument("--batch-size", type=COUNT, default=8, help="on the CPU (a GPU uses lm-eval's 'auto')")
    parser.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="seed of lm-eval's few-shot sampling")
    parser.add_argument("--allow-code-execution", action="store_true",
                        help="run model-generated code (HumanEval); skipped otherwise")
    parser.add_argument("--output", type=Path, help="results JSON (default: print only)")
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    specs = benchmarks.resolve(args.benchmarks)
    shots = benchmarks.shots(specs, args.num_fewshot)
    if args.data_dir is not None:  # bad data fails before the model is resolved (a .gguf is converted)
        lm_tasks.check_local_data([s for s in specs if args.allow_code_execution or not s.code_execution],
                                  args.data_dir)
    model_dir, _ = checkpoints.resolve("model", args.model, Cache(Cache.default_root()))
    with tempfile.TemporaryDirectory(prefix="faco-tasks-") as task_dir:
        results = evaluate_benchmarks(model_dir, specs, Path(task_dir), shots=shots, data_dir=args.data_dir,
                                      limit=args.limit, batch_size=args.batch_size, seed=args.seed,
                                      allow_code_execution=args.allow_code_execution)
    print(results_table(results))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        record = {"model": args.model, "limit": args.limit, "data_dir": str(args.data_dir) if args.data_dir else None,
                  "seed": args.seed, "results": results}
        args.output.write_text(json.dumps(record, indent=1))
        print(f"wrote {args.output}")
    return 0


def results_table(results: dict[str, dict]) -> str:
    """benchmark, metric, score, stderr, n: one line each (skipped benchmarks say why)."""
    lines = [f"{'benchmark':<34} {'metric':<9} {'score':>7} {'stderr':>7} {'n':>6}  shots"]
    for name, result in results.items():
        if "skipped" in result:
            lines.append(f"{name:<34} skipped: {result['skipped']}")
            continue
        stderr = f"{result['stderr']:.4f}" if result["stderr"] is not None else "n/a"
        lines.append(f"{name:<34} {result['metric']:<9} {result['score']:>7.4f} {stderr:>7} {result['n']:>6}  "
                     f"{result['shots']}")
    return "\n".join(lines)


def add_status(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("status", help="what a run needs, with its cache keys, and whether each is cached",
                                 description="The stages the selected experiments read, in build order, with "
                                             "each artefact's cache key and whether the cache holds it: what "
                                             "`pytest experiments` with the same options would build. Builds "
                                             "nothing (a key that depends on an unbuilt input is shown as ?).")
    _add_selection(parser)
    parser.set_defaults(run=run_status)


class _Selected:
    """A pytest plugin that keeps what a collection selected, with the run's preset and seeds."""

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.preset, self.seeds = plugin.run_preset(session.config)
        self.selected = plugin.selection(session.items)


def _add_selection(parser: argparse.ArgumentParser) -> None:
    """The options that say what a run selects, as `pytest experiments` takes them."""
    parser.add_argument("--preset", default="tiny", help="a built-in preset or a .toml file (default: tiny)")
    parser.add_argument("--seed", type=NON_NEGATIVE_INT, help="one seed (default: the preset's seeds)")
    parser.add_argument("-k", dest="select", metavar="EXPR", help="pytest's -k over the experiments' ids")
    parser.add_argument("-m", dest="markers", metavar="EXPR",
                        help="pytest's -m over the experiments' markers (-m beyond: the experiments beyond the paper)")
    parser.add_argument("--cache", type=Path, help="the cache directory (default: $FACO_CACHE_DIR or ~/.cache/faco)")
    parser.add_argument("--experiments", type=Path, default=Path("experiments"),
                        help="the experiments' folder (default: ./experiments)")


def _collect(args: argparse.Namespace, extra: Sequence[str] = ()) -> _Selected:
    """What `pytest experiments` with these options would select (collected, nothing run)."""
    if not args.experiments.is_dir():
        raise ConfigError(f"{args.experiments}: no experiments folder here (run in the project, or --experiments DIR)")
    options = ["--faco-preset", args.preset, *(["--faco-seed", str(args.seed)] if args.seed is not None else []),
               *(["-k", args.select] if args.select else []), *(["-m", args.markers] if args.markers else []), *extra]
    found = _Selected()
    code = pytest.main([str(args.experiments), "--collect-only", "-p", "no:terminal", "-p", "no:cacheprovider",
                        *options], plugins=[found])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) or not hasattr(found, "preset"):
        raise ConfigError(f"the experiments did not collect with {' '.join(options)} (pytest exit {int(code)}); "
                          f"`pytest {args.experiments} --collect-only {' '.join(options)}` shows why")
    return found


def run_status(args: argparse.Namespace) -> int:
    found = _collect(args)
    root = args.cache or Cache.default_root()
    reads = registry.reads(found.selected, found.preset)
    print(f"faco status: preset {found.preset.name}, {len(found.selected)} experiment(s) selected, cache {root}")
    for seed in found.seeds:
        preset = found.preset.replace(seed=seed)
        rows = [row for row in study.status(preset, root, study.requests_of(reads, bool(preset.evaluation.benchmarks)))
                if row.cached is not None]
        print(status_table(seed, rows))
    return 0


def add_build(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("build", help="build what a run needs as jobs (local processes, Slurm)",
                                 description="Submits a job for every artefact the selected experiments read "
                                             "and the cache lacks (what `faco status` lists as missing), through "
                                             "submitit: local processes, Slurm jobs ([execution] in the preset "
                                             "says where and how much) or in this process (debug). Prints each "
                                             "job's id, state and last log line; a failed job fails the build "
                                             "with its id and the end of its log. Options after -- go to pytest "
                                             "as for `pytest experiments` (e.g. -- --faco-source-data DIR).")
    _add_selection(parser)
    parser.add_argument("--executor", choices=execution.EXECUTORS, help="default: the preset's [execution] executor")
    parser.add_argument("--no-wait", action="store_true",
                        help="submit and return (Slurm: dependencies wait in the queue); `faco status` shows progress")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=run_build)


def run_build(args: argparse.Namespace) -> int:
    extra = [a for a in args.pytest_args if a != "--"]
    found = _collect(args, [*(["--faco-executor", args.executor] if args.executor else []), *extra])
    preset = found.preset
    root = Path(args.cache or Cache.default_root())
    wanted = execution.wanted(registry.reads(found.selected, preset), plugin.table2_bases(found.selected),
                              found.seeds[0])
    jobs = execution.plan(preset, root, found.seeds, wanted)
    config = preset.execution
    print(f"faco build: preset {preset.name}, seeds {found.seeds}, {len(jobs)} job(s) to run on {config.executor} "
          f"({config.grouping} jobs), cache {root}", flush=True)
    if not jobs:
        print("faco build: nothing to build; the cache holds everything the selection reads")
        return 0
    try:
        outcome = execution.execute(preset, root, jobs, wait=not args.no_wait,
                                    progress=lambda line: print(f"{time.strftime('%H:%M:%S')} {line}", flush=True))
    except execution.BuildFailed as error:
        print(error, file=sys.stderr)
        return 1
    done = sum(state == "COMPLETED" for state in outcome.states.values())
    print(f"faco build: {done} of {len(jobs)} job(s) completed" + ("" if done == len(jobs) else
          "; the rest are queued (squeue; `faco status` shows what is cached)"))
    return 0


def status_table(seed: int, rows: list[study.Status]) -> str:
    """One line per artefact (stage, what, key, cached or missing) and what a run would build."""
    lines = [f"seed {seed}:", f"  {'stage':<11} {'artefact':<40} {'key':<24} state"]
    for row in rows:
        state = "cached" if row.cached else "missing"
        lines.append(f"  {row.request.stage:<11} {row.label[:40]:<40} {row.key or '? (input not built)':<24} {state}")
    missing: dict[str, int] = {}
    for row in rows:
        if not row.cached:
            missing[row.request.stage] = missing.get(row.request.stage, 0) + 1
    built = ", ".join(f"{stage} {n}" for stage, n in missing.items())
    lines.append(f"  {len(rows) - sum(missing.values())} of {len(rows)} cached; "
                 + (f"a run would build {built}" if missing else "nothing to build"))
    return "\n".join(lines)


def add_plan(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("plan", help="what a preset's grid costs: runs, memory per GPU, disk, GPU-hours",
                                 description="The training runs and evaluations every finding reads, the memory "
                                             "one GPU needs under the preset's sharding, the disk the grid "
                                             "writes and the GPU-hours it takes (FLOP-based, the MFU assumed "
                                             "stated). A plan that does not fit one GPU's memory "
                                             "(launch.gpu_memory_gb) is refused with exit 2. Builds nothing.")
    parser.add_argument("--preset", default="tiny", help="a built-in preset or a .toml file (default: tiny)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override one preset field as --faco-set does, e.g. launch.sharding=none (repeatable)")
    parser.add_argument("--gpu", choices=sorted(costs.PEAK_TFLOPS), default="a100",
                        help="the GPU whose peak FLOP/s the GPU-hours assume (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON instead of the tables")
    parser.set_defaults(run=run_plan)


def grid_reads(preset: Preset) -> list[Read]:
    """What every finding's experiment reads of `preset`, at each of its CRs, each once: the whole grid (the
    paper's; the experiments beyond it run only when asked for, `-m beyond`)."""
    every = [(spec.name, {"faco_ratio": ratio}) for spec in registry.FINDINGS if not spec.options
             for ratio in preset.corruption.ratios]
    return list(dict.fromkeys(registry.reads(every, preset)))


def run_plan(args: argparse.Namespace) -> int:
    preset = load_preset(args.preset)
    for assignment in args.overrides:
        preset = override(preset, assignment)
    plan = costs.plan(preset, grid_reads(preset), args.gpu)
    print(json.dumps(costs.as_json(plan), indent=1) if args.json else costs.render(plan))
    if not plan.fits:
        print(f"faco plan: error: {costs.refusal(plan)}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def add_verify(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("verify", help="re-hash every cache entry against its manifest; list the corrupt ones",
                                 description="A warm read trusts a file whose size and stat times are its "
                                             "manifest's; this re-hashes every file of every entry (of one "
                                             "stage) and lists each entry that fails, changing nothing (the "
                                             "next run moves a corrupt entry aside and rebuilds it). Exit 1 if "
                                             "any entry is corrupt.")
    parser.add_argument("--cache", type=Path, help="the cache directory (default: $FACO_CACHE_DIR or ~/.cache/faco)")
    parser.add_argument("--stage", help="only this stage's entries, e.g. finetune")
    parser.set_defaults(run=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    cache = Cache(args.cache or Cache.default_root())
    if not cache.root.is_dir():
        raise ConfigError(f"{cache.root}: no cache directory here")
    entries = cache.entries(args.stage)
    corrupt = [problem for stage, key in entries if (problem := cache.check(stage, key))]
    for problem in corrupt:
        print(f"corrupt: {problem}")
    evicted = sum(bool(cache.evicted(stage, key)) for stage, key in entries)
    print(f"faco verify: {len(entries)} entries in {cache.root}{f' (stage {args.stage})' if args.stage else ''}, "
          f"{len(corrupt)} corrupt; {evicted} with files dropped on purpose (evicted)")
    return 1 if corrupt else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="faco", description="The FACO study as a pytest suite: tools.")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_build_dataset(commands)
    add_report(commands)
    add_tolerances(commands)
    add_evaluate(commands)
    add_status(commands)
    add_build(commands)
    add_plan(commands)
    add_verify(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, SourceError, TeacherError, ItemError, OSError) as error:
        print(f"faco {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"faco {args.command}: interrupted; paid replies are in the reply cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
