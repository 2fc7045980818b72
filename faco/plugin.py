"""faco's pytest plugin (entry point `pytest11`): options, the study fixtures, findings and baselines.

    pytest experiments                      # the embedded default preset, cached
    pytest experiments -k recovery          # one experiment; builds only what it needs
    pytest experiments --faco-seed 1        # one seed: its own cache keys, reports and baseline
    pytest experiments --faco-sweep finetune.lr=3e-4,1e-3   # the study once per value of one field
    pytest experiments --faco-regen         # rewrite the findings baseline (and fail, for review)

Baselines are <rootdir>/experiments/baselines/<run>.json; a project's ini file moves them
(`faco_baselines = DIR`, relative to the rootdir). Heavy imports (torch, transformers, lm-eval) happen
inside fixtures, never at plugin import.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from faco.config.load import load_preset, override
from faco.config.schema import ConfigError, Preset
from faco.core import logs
from faco.core.cache import Cache
from faco.data.dataset import load_dataset_items
from faco.data.items import ItemError
from faco.evaluation import benchmarks, lm_tasks, runner
from faco.evaluation.groups import benchmark_choices
from faco.findings import records, registry
from faco.models import checkpoints
from faco.report.html import ReportError, build_report, html_summary_lines
from faco.core import cache as cache_counts
from faco.study import execution, sweep
from faco.study.study import Seeds, Study

FINDING_KEY = "faco_finding"  # user_properties key: carries findings from xdist workers to the table
EXPERIMENT_KEY = "faco_experiment"  # user_properties key: the finding id of an experiment, recorded or not
NAME_KEY = "faco_finding_name"  # user_properties key: the finding an experiment decides (for its skip reason)
UNCHECKED_KEY = "faco_unchecked"  # user_properties key: key numbers the baseline marks unchecked
log = logging.getLogger("faco.plugin")
BASELINES = "experiments/baselines"  # where faco's own baselines live; the ini option faco_baselines moves them


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faco", "faco: the FACO study as experiments")
    group.addoption("--faco-preset", default="tiny",
                    help="study preset: a built-in name (tiny, smoke, ...) or a TOML file (default: tiny)")
    group.addoption("--faco-seed", type=int, default=None,
                    help="run one seed (default: the preset's seeds, pooled; tiny: 0,1,2)")
    group.addoption("--faco-seeds", default=None, metavar="S1,S2,..",
                    help="run the grid for these seeds and decide findings on the pooled results")
    group.addoption("--faco-workers", type=int, default=None, metavar="N",
                    help="build independent training runs (seeds, CRs) as N local jobs at once before the "
                         "tests read them (default: one per core for presets that pre-train their bases on world items, "
                         "else 1; 1 = serially, in the test process); "
                         "the numbers are the same either way")
    group.addoption("--faco-executor", default=None, choices=execution.EXECUTORS,
                    help="build what the selected tests read as jobs first: local processes, Slurm jobs (on the "
                         "cluster this runs on; [execution] says where and how much) or in-process (debug); "
                         "the tests then only read the cache (default: the preset's, local)")
    group.addoption("--faco-sweep", default=None, metavar="FIELD=V1,V2,..",
                    help="run the study once per value of one numeric preset field (e.g. finetune.lr=3e-4,1e-3); "
                         "findings record the value, the report draws each finding's key number against it")
    group.addoption("--faco-cache", default=None,
                    help="artefact cache directory (default: $FACO_CACHE_DIR, else the user cache dir)")
    group.addoption("--faco-benchmark-data", default=None, metavar="DIR",
                    help="the paper's benchmarks read DIR/<benchmark>/<split>.jsonl instead of the hub")
    group.addoption("--faco-allow-code-execution", action="store_true",
                    help="run benchmarks that execute model-written code (HumanEval); skipped otherwise")
    group.addoption("--faco-items", default=None, metavar="DIR",
                    help="train on a FACO dataset built by `faco build-dataset` instead of the preset's items")
    group.addoption("--faco-source-data", default=None, metavar="DIR",
                    help="a preset that builds its items ([items.build]) reads local copies of the sources "
                         "from DIR (laid out as for `faco build-dataset --data-dir`) instead of the hub")
    group.addoption("--faco-set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override one preset field, e.g. finetune.epochs=2 (repeatable; checked against the "
                         "same baseline, so a change beyond tolerance fails)")
    group.addoption("--faco-regen", action="store_true",
                    help="rewrite the findings baseline from this run, then fail so the diff gets reviewed")
    group.addoption("--faco-reports", default="reports", help="directory for findings and reports (default: reports)")
    parser.addini("faco_baselines", default=BASELINES,
                  help=f"folder of the findings baselines, relative to the rootdir (default: {BASELINES})")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _SKIPS.clear()  # an in-process rerun (pytester) starts with none
    config.addinivalue_line("markers", "finding(name): an experiment that decides one of the study's findings")
    preset = _preset(config)  # a wrong preset/seed/items fails here, before any work
    config.stash[_PRESET] = preset
    config.stash[_SEEDS] = _seeds(config, preset)
    config.stash[_SWEEP] = _sweep(config, preset)
    config.stash[_STARTED] = time.time()
    config.stash[_BASELINE] = _baseline_path(config, preset)
    config.stash[_BASELINE_BEFORE] = _read_text(config.stash[_BASELINE])
    if not hasattr(config, "workerinput"):  # a stale .obtained file would mislead the reviewer
        config.stash[_BASELINE].with_suffix(".obtained.json").unlink(missing_ok=True)
    try:
        records.load_baseline(config.stash[_BASELINE])
    except records.BaselineError as error:
        raise pytest.UsageError(f"faco: {error}") from None
    if _wants_live_log(config):
        config.option.log_cli_level = "INFO"  # stream progress: a cold run is never silent for minutes
    logs.quiet_noisy_libraries()


_PRESET = pytest.StashKey[Preset]()
_SEEDS = pytest.StashKey[list]()
_SWEEP = pytest.StashKey["tuple[str, list[str]] | None"]()
_STARTED = pytest.StashKey[float]()
_REPORT = pytest.StashKey[str]()
_DRIFT = pytest.StashKey[str]()
_BASELINE = pytest.StashKey[Path]()
_BASELINE_BEFORE = pytest.StashKey[str]()
_STUDIED = pytest.StashKey[bool]()  # a test read the study: the summary says what this process built


def _preset(config: pytest.Config) -> Preset:
    try:
        preset = load_preset(config.getoption("faco_preset"), config.getoption("faco_seed"))
        for assignment in config.getoption("faco_set"):
            preset = override(preset, assignment)
        items = config.getoption("faco_items")
        if items:
            _check_items(Path(items))
            preset = preset.replace(items=dataclasses.replace(preset.items, source=str(Path(items).resolve()),
                                                              build=None))
        preset = _execution_options(config, preset)
        preset = _source_data(config.getoption("faco_source_data"), preset)
        preset = _evaluation_options(config, preset)
        _check_checkpoints(preset)
    except ConfigError as error:
        raise pytest.UsageError(f"faco: {error}") from None
    return preset


def _execution_options(config: pytest.Config, preset: Preset) -> Preset:
    """--faco-executor and --faco-workers, as the preset's [execution] fields (no key holds them)."""
    changes = {name: value for name, value in (("executor", config.getoption("faco_executor")),
                                               ("parallelism", config.getoption("faco_workers")))
               if value is not None}
    return preset.replace(execution=dataclasses.replace(preset.execution, **changes)) if changes else preset


def _check_items(path: Path) -> None:
    """Load the dataset once here: a damaged one is one usage error naming its file, not an error in
    every test that reaches the study."""
    if not path.is_dir():
        raise ConfigError(f"--faco-items {path}: no such directory (build one with `faco build-dataset`)")
    try:
        load_dataset_items(path)
    except ItemError as error:
        raise ConfigError(f"--faco-items {error}") from None


def _check_checkpoints(preset: Preset) -> None:
    """Every base's and the served teacher's checkpoint must exist before anything is built: a wrong path
    is one usage error naming it, not an error in every experiment after minutes of other work."""
    for base in preset.bases:
        if base.checkpoint is not None:
            checkpoints.locate(f"base {base.name!r}", base.checkpoint)
    if preset.items.build is not None and preset.items.build.serve:
        checkpoints.locate("teacher", preset.items.build.serve)
    runner.check_backend(runner.Engine(backend=preset.evaluation.backend))  # not after the first training run


def _source_data(data: str | None, preset: Preset) -> Preset:
    """--faco-source-data DIR as the preset's items.build.data_dir."""
    if not data:
        return preset
    if preset.items.build is None:
        raise ConfigError(f"--faco-source-data: preset {preset.name!r} builds no items ([items.build]); "
                          "build a dataset with `faco build-dataset --data-dir DIR` and pass --faco-items")
    if not Path(data).is_dir():
        raise ConfigError(f"--faco-source-data {data}: no such directory")
    build = dataclasses.replace(preset.items.build, data_dir=str(Path(data).resolve()))
    return preset.replace(items=dataclasses.replace(preset.items, build=build))


def _evaluation_options(config: pytest.Config, preset: Preset) -> Preset:
    """--faco-benchmark-data and --faco-allow-code-execution, as the preset's evaluation fields."""
    changes: dict[str, Any] = {}
    data = config.getoption("faco_benchmark_data")
    if data:
        if not Path(data).is_dir():
            raise ConfigError(f"--faco-benchmark-data {data}: no such directory")
        changes["data_dir"] = str(Path(data).resolve())
        if preset.evaluation.benchmarks:  # bad benchmark data: one error naming file and line, before any work
            allowed = preset.evaluation.allow_code_execution or config.getoption("faco_allow_code_execution")
            lm_tasks.check_local_data([spec for spec in benchmarks.resolve(preset.evaluation.benchmarks)
                                       if allowed or not spec.code_execution], Path(data))
    if config.getoption("faco_allow_code_execution"):
        changes["allow_code_execution"] = True
    return preset.replace(evaluation=dataclasses.replace(preset.evaluation, **changes)) if changes else preset


def _seeds(config: pytest.Config, preset: Preset) -> list[int]:
    text = config.getoption("faco_seeds")
    if text is None:  # --faco-seed N gives one seed; neither option, the preset's seeds
        return [preset.seed] if config.getoption("faco_seed") is not None else preset.default_seeds
    if config.getoption("faco_seed") is not None:
        raise pytest.UsageError("faco: give --faco-seed or --faco-seeds, not both")
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise pytest.UsageError(f"faco: --faco-seeds {text!r}: expected comma-separated integers like 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise pytest.UsageError(f"faco: --faco-seeds {text!r}: expected distinct integers like 0,1,2")
    return seeds


def _sweep(config: pytest.Config, preset: Preset) -> tuple[str, list[str]] | None:
    """--faco-sweep FIELD=V1,V2: the field and its values, each checked now by building its preset."""
    text = config.getoption("faco_sweep")
    if text is None:
        return None
    try:
        return sweep.parse(preset, text)
    except ConfigError as error:
        raise pytest.UsageError(f"faco: {error}") from None


def _wants_live_log(config: pytest.Config) -> bool:
    """Experiments stream progress unless the user chose a log level or turned logging off."""
    chosen = config.getoption("log_cli_level", None) or config.getini("log_cli_level")  # -o log_cli_level=... too
    if not config.pluginmanager.hasplugin("logging") or chosen:
        return False
    runs_experiments = any("experiments" in Path(arg.split("::")[0]).resolve().parts for arg in config.args)
    return runs_experiments and not config.getini("log_cli")


def _run_name(config: pytest.Config) -> str:
    """Reports and baselines per preset, seeds and items: runs on a built dataset never share a baseline
    with runs on world items."""
    preset = config.stash[_PRESET]
    default_seeds = load_preset(config.getoption("faco_preset")).default_seeds  # a user's file: no built-in name
    name = records.run_name(preset.name, config.stash[_SEEDS], default_seeds)
    if config.stash[_SWEEP]:
        name += f"-sweep-{config.stash[_SWEEP][0]}"
    own = preset.items.source in ("world", "build")  # the preset's own items: its own baseline
    return name if own else f"{name}-items-{Path(preset.items.source).name}"


def _baseline_path(config: pytest.Config, preset: Preset) -> Path:
    """<rootdir>/<faco_baselines>/<run>.json: a project keeps its baselines where its ini file says."""
    folder = config.getini("faco_baselines").strip()
    if not folder:
        raise pytest.UsageError(f"faco: the ini option faco_baselines is empty; name the baselines folder, "
                                f"relative to the rootdir (default: {BASELINES})")
    return Path(config.rootpath) / folder / f"{_run_name(config)}.json"


def _read_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def faco_preset(pytestconfig: pytest.Config) -> Preset:
    """The study preset of this run (`--faco-preset`, `--faco-seed`, `--faco-items`)."""
    return pytestconfig.stash[_PRESET]


@pytest.fixture(scope="session")
def faco_study(faco_preset: Preset, request: pytest.FixtureRequest, faco_reports: Path):  # noqa: ANN201
    """The study of this run over its seeds (the preset's, pooled), built lazily and cached:

        from faco.study.study import finetuned

        def test_x(faco_study):
            accuracy = faco_study.accuracy(finetuned("strong", 100), "heldout")

    Cold, what the selected tests read is first built as jobs (faco.study.execution): local processes side by
    side for the embedded tier, Slurm jobs with --faco-executor slurm. Under --faco-sweep there is one study
    per value of the swept field (an indirect session parameter).
    """
    config = request.config
    value = getattr(request, "param", None)
    preset = faco_preset if value is None else sweep.point(faco_preset, config.stash[_SWEEP][0], value)
    cache = Cache(Path(config.getoption("faco_cache") or Cache.default_root()))
    seeds = config.stash[_SEEDS]
    config.stash[_STUDIED] = True
    if not hasattr(config, "workerinput"):  # under xdist the workers build lazily, as they always did
        _prebuild(config, preset, cache.root, seeds, selection(request.session.items, value))
    study = Seeds([Study(preset.replace(seed=seed), cache) for seed in seeds])
    yield study
    records.store_provenance(faco_reports / "provenance.json", preset, study.seeds, study.cache_keys(),
                                 cache.root)


def _prebuild(config: pytest.Config, preset: Preset, root: Path, seeds: list[int],
              selected: list[tuple[str, dict[str, Any]]]) -> None:
    """Build the selected tests' artefacts as jobs. A failed job stops the run where an executor was asked
    for (the tests must not train on a login node); under the default local prebuild the tests that read it
    build it again in-process and report the error where it belongs."""
    explicit = config.getoption("faco_executor") is not None or preset.execution.executor != "local"
    wanted = execution.wanted(registry.reads(selected, preset), table2_bases(selected), seeds[0])
    jobs = execution.plan(preset, root, seeds, wanted)  # every key first: a broken base errors here, in setup
    if not jobs or not execution.prebuilds(preset, explicit):
        return
    try:
        execution.execute(preset, root, jobs)
    except execution.BuildFailed as error:
        if explicit:
            pytest.exit(str(error), returncode=1)
        log.warning("%s\nthe tests that read them build them again in this process", error)


def table2_bases(selected: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The bases whose Table 2 answers the selection shows (an illustration: no registry entry)."""
    return sorted({params["faco_base"] for name, params in selected if name == "table2"})


def _reports_dir(config: pytest.Config) -> Path:
    """reports/<run>/; a run with --faco-set overrides reports apart (its baseline stays the run's)."""
    name = _run_name(config)
    overrides = config.getoption("faco_set")
    if overrides:
        name += "-set-" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
    return Path(config.rootpath) / config.getoption("faco_reports") / name


@pytest.fixture(scope="session")
def faco_reports(pytestconfig: pytest.Config) -> Path:
    """reports/<run>/: findings.json, provenance.json and the HTML report of this preset and seeds."""
    path = _reports_dir(pytestconfig)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def faco_finding(request: pytest.FixtureRequest, faco_preset: Preset, faco_reports: Path):  # noqa: ANN201
    """Decide a finding (declared in faco.findings.registry): records its numbers, checks the baseline, and
    asserts that it holds.

        def test_recovery(faco_finding, ...):
            faco_finding(holds=p < 0.05, summary="...", statistic=Statistic("McNemar", share, p),
                         interval=regained,  # a statistics.Interval: carries its confidence level
                         key=per_seed, key_metrics=["regained"], recovered=0.8, cr0=0.9, cr100=0.3)
    """
    return _FindingRecorder(request, faco_preset, faco_reports)


class _FindingRecorder:
    def __init__(self, request: pytest.FixtureRequest, preset: Preset, reports: Path) -> None:
        self.node = request.node
        self.config = request.config
        self.preset = preset
        self.reports = reports

    def __call__(self, holds: bool, summary: str, key: list[dict[str, float]] = (), key_metrics: list[str] = (),
                 statistic: Any = None, interval: Any = None, **numbers: Any) -> None:
        """Fill the finding's record (faco.findings.records.Finding): `statistic` (faco.findings.registry.Statistic) is the
        test the verdict turns on, `interval` (faco.findings.statistics.Interval, with its level) the effect's
        interval; `key`: one dict of numbers per seed, `key_metrics` of them checked against the baseline;
        `numbers`: what the report draws."""
        per_seed = {metric: [float(seed[metric]) for seed in key] for metric in key_metrics}
        sweep = self.config.stash[_SWEEP]
        if sweep:  # the axis value, and the id the finding has at every value
            value = self.node.callspec.params["faco_study"]
            point = f"{sweep[0]}={value}"
            numbers = {**numbers, "sweep": {"field": sweep[0], "value": float(value),
                                            "id": finding_id(self.node).replace(f"-{point}", "").replace(point, "")}}
        finding = records.Finding(finding_name(self.node), finding_id(self.node), bool(holds), numbers, summary,
                                      per_seed, statistic, interval)
        run = {"preset": self.preset.name, "seeds": self.config.stash[_SEEDS], "items": self.preset.items.source,
               "overrides": self.config.getoption("faco_set")}
        records.store_finding(self.reports / "findings.json", finding, run)
        self.node.user_properties.append((FINDING_KEY, finding.record()))
        if sweep:  # an exploration, not a regression: no baseline; a finding that does not hold is an xfail
            if not finding.holds:
                pytest.xfail(f"{finding.id} does not hold: {summary}")
            return
        baseline_path = self.config.stash[_BASELINE]
        baseline = records.load_baseline(baseline_path)
        if self.config.getoption("faco_regen") or finding.id not in baseline:
            records.write_baseline_entry(baseline_path, finding,
                                             records.provenance(self.preset, self.config.stash[_SEEDS]))
            why = "rewritten (--faco-regen)" if finding.id in baseline else "missing: written now"
            pytest.fail(f"baseline for {finding.id} {why} in {baseline_path}; review and commit it. "
                        f"Measured: holds={finding.holds}; {summary}", pytrace=False)
        drifts = records.drifts(baseline[finding.id], finding)
        off = records.unchecked(baseline[finding.id])
        if off:  # said at the end of the run: a number no tolerance checks is not silently "passing"
            self.node.user_properties.append((UNCHECKED_KEY, {"id": finding.id, "metrics": off}))
        if drifts:  # reported by pytest_runtest_makereport, so a strict xfail cannot swallow it
            records.store_obtained(baseline_path.with_suffix(".obtained.json"), finding)
            self.node.stash[_DRIFT] = records.drift_table(finding.id, drifts)
        if not finding.holds:
            raise records.FindingDoesNotHold(f"{finding.id} does not hold: {summary}")


def selection(items: list[pytest.Item], sweep_value: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(finding, parameters) of each selected experiment that reads the study (of one sweep point)."""
    return [(finding_name(item), item.callspec.params if hasattr(item, "callspec") else {})
            for item in items if "faco_study" in getattr(item, "fixturenames", ())
            and getattr(getattr(item, "callspec", None), "params", {}).get("faco_study") == sweep_value]


def run_preset(config: pytest.Config) -> tuple[Preset, list[int]]:
    """The preset and seeds of this run, as --faco-preset, --faco-seed(s), --faco-set and the data options
    made them (checked at configure time)."""
    return config.stash[_PRESET], config.stash[_SEEDS]


def finding_name(node: pytest.Item) -> str:
    marker = node.get_closest_marker("finding")
    return marker.args[0] if marker else node.originalname.removeprefix("test_")


def finding_id(node: pytest.Item) -> str:
    callspec = getattr(node, "callspec", None)
    return f"{finding_name(node)}-{callspec.id}" if callspec else finding_name(node)


# --- baseline -> strict xfail; the findings table ---------------------------------------------------

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Known negatives become strict xfails that expect only their verdict (FindingDoesNotHold): any other
    exception inside them is an error, listed apart at the end of the run."""
    experiments = [item for item in items if "faco_finding" in getattr(item, "fixturenames", ())]
    for item in experiments:
        item.user_properties.append((EXPERIMENT_KEY, finding_id(item)))
        item.user_properties.append((NAME_KEY, finding_name(item)))
    if config.getoption("faco_regen") or config.stash[_SWEEP]:
        return
    baseline = records.load_baseline(config.stash[_BASELINE])
    for item in experiments:
        entry = baseline.get(finding_id(item))
        if entry is not None and not entry["holds"]:
            reason = f"known negative on {_run_name(config)}: {entry.get('summary', '')}"
            item.add_marker(pytest.mark.xfail(strict=True, raises=records.FindingDoesNotHold, reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    """A numeric regression fails the test whatever the finding's verdict (also under a strict xfail)."""
    outcome = yield
    report = outcome.get_result()
    drift = item.stash.get(_DRIFT, None)
    if drift and report.when == "call":
        report.outcome = "failed"
        report.longrepr = drift + f"\n(obtained numbers kept in {item.config.stash[_BASELINE].with_suffix('.obtained.json')})"
        if hasattr(report, "wasxfail"):
            del report.wasxfail


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    reports = [r for category in terminalreporter.stats.values() for r in category
               if getattr(r, "when", None) == "call"]
    rows = [dict(value) for report in reports for key, value in report.user_properties if key == FINDING_KEY]
    if rows:
        terminalreporter.section(f"faco findings ({_run_name(config)})")
        width = max(len(r["id"]) for r in rows)
        for name, group in itertools.groupby(sorted(rows, key=_in_paper_order), key=lambda r: r["finding"]):
            group = list(group)
            terminalreporter.write_line(f"{name}: {_question(name)}{sum(r['holds'] for r in group)}/{len(group)} hold",
                                        bold=True)
            for row in group:
                verdict = "holds" if row["holds"] else "does not hold"
                terminalreporter.write_line(f"  {row['id']:<{width}}  {verdict:<13}  {row['summary']}")
    off = [dict(value) for report in reports for key, value in report.user_properties if key == UNCHECKED_KEY]
    if off:
        terminalreporter.write_line(f"faco: {sum(len(o['metrics']) for o in off)} key number(s) unchecked (noise too "
                                    "large for a tolerance):", yellow=True)
        for row in sorted(off, key=lambda o: o["id"]):
            for metric, why in row["metrics"].items():
                terminalreporter.write_line(f"  {row['id']} {metric}: {why}")
    _summarise_errors(terminalreporter, [r for category in terminalreporter.stats.values() for r in category
                                         if isinstance(r, pytest.TestReport)])  # a collection error is pytest's
    if _read_text(config.stash[_BASELINE]) != config.stash[_BASELINE_BEFORE]:
        terminalreporter.write_line(f"faco: the findings baseline {config.stash[_BASELINE]} changed: review and commit it",
                                    red=True)
    if _REPORT in config.stash:
        terminalreporter.write_line(config.stash[_REPORT])
    if config.stash.get(_STUDIED, False):
        terminalreporter.write_line(built_here(cache_counts.BUILT))


def built_here(built: dict[str, int]) -> str:
    """The counters of what this process trained and evaluated itself (jobs' work is not counted here)."""
    trained = sum(n for stage, n in built.items() if execution.JOB_KINDS.get(stage) == "training")
    evaluated = sum(n for stage, n in built.items() if execution.JOB_KINDS.get(stage) == "evaluation")
    detail = ", ".join(f"{stage} {n}" for stage, n in sorted(built.items()))
    return f"faco: this process trained {trained} and evaluated {evaluated} artefact(s)" + (f" ({detail})" if detail else "")


def _summarise_errors(terminalreporter: Any, reports: list) -> None:
    """Experiments that ended in an exception instead of a verdict: nothing was measured, so they are no
    finding's result (and never an expected failure); listed apart with the error that stopped them."""
    broken = {}
    for report in reports:
        properties = dict(getattr(report, "user_properties", ()))  # a collection error has none
        if report.failed and EXPERIMENT_KEY in properties and FINDING_KEY not in properties:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message if crash is not None else str(report.longrepr).strip().splitlines()[-1]
            broken.setdefault(properties[EXPERIMENT_KEY], (report.when, message.splitlines()[0]))
    if broken:
        terminalreporter.write_line(f"faco: {len(broken)} experiment(s) broke before a verdict (errors, not findings):",
                                    red=True, bold=True)
        for name, (when, message) in sorted(broken.items()):
            terminalreporter.write_line(f"  {name}  ({when})  {message}")


def _in_paper_order(row: dict[str, Any]) -> tuple[int, str]:
    """The end-of-run table lists findings in the registry's (the paper's) order, a user's own last."""
    names = registry.NAMES
    return (names.index(row["finding"]) if row["finding"] in names else len(names), row["finding"], row["id"])


def _question(name: str) -> str:
    found = registry.spec(name)
    return f"{found.question} " if found else ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """An experiment its test skipped (one base, one epoch, ...): the reason, for the report to give."""
    properties = dict(report.user_properties)
    if report.skipped and NAME_KEY in properties and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPS.setdefault(properties[NAME_KEY], reason.removeprefix("Skipped: "))


_SKIPS: dict[str, str] = {}  # finding -> why its experiments were skipped in this session (the controller's)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput"):  # xdist worker: the controller decides
        return
    if _SKIPS:
        records.store_skips(_reports_dir(config) / "skipped.json", _SKIPS)
    if _read_text(config.stash[_BASELINE]) != config.stash[_BASELINE_BEFORE] and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    findings = _reports_dir(config) / "findings.json"
    if findings.exists() and findings.stat().st_mtime >= config.stash[_STARTED]:  # recorded this session
        try:
            config.stash[_REPORT] = f"faco report: {build_report(findings.parent).resolve().as_uri()}"
        except ReportError as error:
            config.stash[_REPORT] = f"faco report not built: {error}"


@pytest.hookimpl(optionalhook=True)  # called only with pytest-html installed and --html given
def pytest_html_results_summary(prefix: list, summary: list, postfix: list, session: pytest.Session) -> None:
    html = Path(session.config.getoption("htmlpath")).expanduser().resolve()
    prefix.extend(html_summary_lines(_reports_dir(session.config), link_from=html.parent))


# --- preset-driven parametrization with readable ids -----------------------------------------------

def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that take `faco_base`, `faco_ratio`, `faco_benchmark`, `faco_group` or `faco_heldout` run once
    per base / CR / benchmark of the preset, with ids that `-k strong`, `-k cr100`, `-k heldout` select."""
    preset = metafunc.config.stash[_PRESET]
    evaluated = benchmark_choices(preset)
    choices = {
        "faco_base": [b.name for b in preset.bases],
        "faco_ratio": list(preset.corruption.ratios),
        "faco_group": evaluated["group"],
        "faco_benchmark": evaluated["benchmark"],
        "faco_heldout": evaluated["heldout"],
    }
    for name, values in choices.items():
        if name in metafunc.fixturenames:
            ids = [f"cr{v}" for v in values] if name == "faco_ratio" else [str(v) for v in values]
            metafunc.parametrize(name, values, ids=ids)
    sweep = metafunc.config.stash[_SWEEP]
    if sweep and "faco_study" in metafunc.fixturenames:  # last, so ids end in e.g. "-finetune.lr=0.001"
        field, values = sweep
        metafunc.parametrize("faco_study", values, ids=[f"{field}={v}" for v in values], indirect=True,
                             scope="session")
