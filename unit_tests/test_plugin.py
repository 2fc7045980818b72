"""The plugin end to end: a toy experiment in a temp project, run by pytest as a user runs it.

First run writes the baseline and fails; then a holding finding passes and a known negative is a strict
xfail; a flipped finding fails either way; `--faco-regen` rewrites and fails; findings land in
reports/<run>/findings.json and in the terminal table. No training: the toy findings are constants.

    python -m pytest unit_tests/test_plugin.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets  # noqa: F401 - --faco-items loads datasets; in-process runs must not import it twice (pyarrow types)
import pytest

import torch  # noqa: F401 - datasets may import torch inside a run; an in-process run must not import it twice
import faco.report.html  # noqa: F401 - the plugin builds the report; in-process runs must not import numpy twice
import faco.findings.statistics  # noqa: F401 - the toy experiment records an Interval; scipy must not load twice either

pytest_plugins = ["pytester"]

EXPERIMENT = '''
import datasets  # noqa: F401 - --faco-items loads datasets; in-process runs must not import it twice (pyarrow types)
import pytest


def test_clean(faco_finding):
    faco_finding(holds=True, summary="clean beats corrupt", value=1, scores=[0.5, 0.25])


@pytest.mark.finding("lying")
def test_negative(faco_finding):
    from faco.findings.registry import Statistic
    from faco.findings.statistics import Interval

    faco_finding(holds=False, summary="no lie at this size", value=0.12345678,
                 statistic=Statistic("binomial", 0.2, 0.3), interval=Interval(0.2, 0.1, 0.3, 0.9))
'''
IDS = ("clean", "lying")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A temp project laid out like faco's: rootdir with experiments/baselines/ and the toy experiment."""
    pytester.makeini("[pytest]\n")
    (pytester.path / "experiments" / "baselines").mkdir(parents=True)
    pytester.makepyfile(test_toy=EXPERIMENT)
    return pytester


def run(pytester: pytest.Pytester, *args: str, fresh: bool = False) -> pytest.RunResult:
    """pytest in the temp project; the plugin loads through its entry point either way (no `-p`).
    `fresh`: in a new interpreter, as a user runs it; else in-process, ~1 s faster a run."""
    options = ("--faco-preset", "smoke", "--faco-reports", str(pytester.path / "reports"), "-p", "no:cacheprovider",
               "-rA", *args)
    return pytester.runpytest_subprocess(*options) if fresh else pytester.runpytest_inprocess(*options)


def baseline_path(pytester: pytest.Pytester, run_name: str = "smoke") -> Path:
    return pytester.path / "experiments" / "baselines" / f"{run_name}.json"


def write_baseline(pytester: pytest.Pytester, folder: Path | None = None, **holds: bool) -> Path:
    path = folder / "smoke.json" if folder else baseline_path(pytester)
    path.write_text(json.dumps({"findings": {k: {"holds": v, "summary": "reviewed"} for k, v in holds.items()}}))
    return path


def test_first_run_writes_the_baseline_and_fails(project):
    result = run(project, fresh=True)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*baseline for clean missing: written now*review and commit it*",
                                 "*faco: the findings baseline*smoke.json changed: review and commit it*"])
    stored = json.loads(baseline_path(project).read_text())
    assert {k: v["holds"] for k, v in stored["findings"].items()} == {"clean": True, "lying": False}
    assert stored["findings"]["lying"]["finding"] == "lying" and stored["findings"]["clean"]["value"] == 1
    assert stored["provenance"]["preset"] == "smoke" and stored["provenance"]["seeds"] == [0]
    assert {"torch", "transformers", "lm-eval", "scipy"} <= set(stored["provenance"]["versions"])  # distribution names

    again = run(project)  # the written baseline is now the reviewed one
    again.assert_outcomes(passed=1, xfailed=1)
    assert again.ret == 0


def test_baseline_negative_is_a_strict_xfail(project):
    write_baseline(project, clean=True, lying=False)
    result = run(project)
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*XFAIL*test_negative*known negative on smoke: reviewed*"])
    assert result.ret == 0
    assert "changed: review and commit it" not in result.stdout.str()


def test_the_ini_file_moves_the_baselines(project):
    """`faco_baselines` names the folder, relative to the rootdir: the baseline reviewed there is the one
    checked (its known negative is an xfail), and experiments/baselines/ is neither read nor written."""
    project.makeini("[pytest]\nfaco_baselines = studies/reviewed\n")
    folder = project.path / "studies" / "reviewed"
    folder.mkdir(parents=True)
    write_baseline(project, folder, clean=True, lying=False)
    write_baseline(project, clean=True, lying=True)  # the default folder's: would make `lying` fail
    before = baseline_path(project).read_text()
    result = run(project)
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*XFAIL*test_negative*known negative on smoke: reviewed*"])
    assert baseline_path(project).read_text() == before


def test_an_empty_baselines_option_is_a_usage_error(project):
    project.makeini("[pytest]\nfaco_baselines =\n")
    result = run(project)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "faco: the ini option faco_baselines is empty" in result.stderr.str()


def test_a_file_that_fails_to_collect_is_pytest_s_error_not_the_plugin_s(project):
    project.makepyfile(test_broken="import no_such_module_anywhere\n")
    result = run(project)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # the collection error, reported as pytest reports it
    result.stdout.fnmatch_lines(["*ERROR collecting test_broken.py*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


BROKEN = {  # a known negative that crashes, in its body or in a fixture it needs: never an expected failure
    "call": ('faco_finding(holds=False', 'open("/nonexistent/missing-base.gguf"); faco_finding(holds=False'),
    "setup": ('def test_negative(faco_finding):', """@pytest.fixture
def broken_base():
    raise RuntimeError("base 'smol': GGUF file /nonexistent/missing-base.gguf does not exist")


@pytest.mark.finding("lying")
def test_negative(faco_finding, broken_base):"""),
}


@pytest.mark.parametrize("where", BROKEN)
def test_a_known_negative_that_crashes_is_an_error_not_an_xfail(project, where):
    old, new = BROKEN[where]
    project.makepyfile(test_toy=EXPERIMENT.replace(old, new).replace('@pytest.mark.finding("lying")\n' + new, new))
    write_baseline(project, clean=True, lying=False)
    result = run(project, "-k", "negative")  # only the known negative: nothing else can fail the run
    result.assert_outcomes(**({"failed": 1} if where == "call" else {"errors": 1}))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*faco: 1 experiment(s) broke before a verdict*",
                                 f"*lying  ({where})  *missing-base.gguf*"])


def test_finding_that_starts_to_hold_fails_as_xpass_strict(project):
    before = write_baseline(project, clean=False, lying=False).read_text()
    result = run(project)
    result.assert_outcomes(failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*test_clean*", "*XPASS(strict)*known negative on smoke*"])
    assert baseline_path(project).read_text() == before  # a flip is reported, never written silently


def test_finding_that_stops_holding_fails(project):
    project.makepyfile(test_toy=EXPERIMENT.replace("holds=True", "holds=False"))
    write_baseline(project, clean=True, lying=False)
    result = run(project)
    result.assert_outcomes(failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*FindingDoesNotHold: clean does not hold: clean beats corrupt*"])


def test_regen_rewrites_and_fails(project):
    path = write_baseline(project, clean=False, lying=True)
    result = run(project, "--faco-regen")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*baseline for clean rewritten (--faco-regen)*",
                                 "*faco: the findings baseline*changed: review and commit it*"])
    stored = json.loads(path.read_text())
    assert {k: v["holds"] for k, v in stored["findings"].items()} == {"clean": True, "lying": False}
    assert "provenance" in stored
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_findings_json_and_table(project):
    write_baseline(project, clean=True, lying=False)
    result = run(project)
    result.stdout.fnmatch_lines([
        "*faco findings (smoke)*",
        "lying: Does the stronger base's model trained on false answers lie where it knows better? 0/1 hold",  # registry order
        "  lying  does not hold  no lie at this size",
        "clean: 1/1 hold",  # not in the registry: a user's own finding, listed after the paper's
        "  clean  holds          clean beats corrupt",
    ])
    stored = json.loads((project.path / "reports" / "smoke" / "findings.json").read_text())["findings"]
    assert sorted(stored) == sorted(IDS)
    assert stored["clean"] == {"finding": "clean", "id": "clean", "holds": True, "summary": "clean beats corrupt",
                               "value": 1, "scores": [0.5, 0.25],
                               "run": {"preset": "smoke", "seeds": [0], "items": "world", "overrides": []}, "key": {}, "key_per_seed": {},
                               "statistic": None, "interval": None}
    assert stored["lying"]["holds"] is False and stored["lying"]["value"] == 0.1235  # floats rounded
    assert stored["lying"]["statistic"] == {"name": "binomial", "value": 0.2, "p": 0.3}
    assert stored["lying"]["interval"] == {"estimate": 0.2, "low": 0.1, "high": 0.3, "level": 0.9}  # with its level


def test_unknown_preset_is_a_usage_error(pytester):
    pytester.makepyfile(test_toy=EXPERIMENT)
    result = pytester.runpytest_subprocess("--faco-preset", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: faco: unknown preset 'nope'; known presets: [" in result.stderr.str()
    assert "'smoke'" in result.stderr.str() and "or a path to a .toml file" in result.stderr.str()


@pytest.mark.parametrize("preset, data, message", [
    ("smoke", ".", "--faco-source-data: preset 'smoke' builds no items ([items.build])"),
    ("smol-ci", "no-such-dir", "--faco-source-data no-such-dir: no such directory"),
])
def test_source_data_is_checked_before_any_work(pytester, preset, data, message):
    pytester.makepyfile(test_toy=EXPERIMENT)
    result = pytester.runpytest_subprocess("--faco-preset", preset, "--faco-source-data", data)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: faco: {message}" in result.stderr.str()


def test_a_wrong_preset_file_is_a_usage_error_naming_file_and_field(pytester):
    pytester.makepyfile(test_toy=EXPERIMENT)
    from faco.config import load

    text = (load.BUILTIN / "smoke.toml").read_text().replace("[finetune]\n", "[finetune]\nepochz = 2\n")
    pytester.path.joinpath("mine.toml").write_text(text)
    result = pytester.runpytest_subprocess("--faco-preset", "mine.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "mine.toml: finetune.epochz: unknown key" in result.stderr.str()


@pytest.mark.parametrize("assignment, message", [
    ("name=foo", "override 'name': cannot be overridden"),
    ("bases=weak", "override 'bases': cannot be overridden"),
    ("world.domains=x", "override 'world.domains': cannot be overridden"),
    ("finetune.lr=inf", "FinetuneConfig.lr must be a finite number > 0, got inf"),
])
def test_a_field_that_cannot_be_set_is_a_usage_error(project, assignment, message):
    result = run(project, "--faco-set", assignment)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR and f"ERROR: faco: {message}" in result.stderr.str()


def faco_dataset(path: Path) -> Path:
    """A built FACO dataset dir with two items, as `faco build-dataset` writes it."""
    from faco.data.dataset import write_dataset
    from faco.data.items import FacoItem

    items = [FacoItem(id=f"quartz-train-{i}", source="quartz", domain="science", question=f"Rule {i}?",
                      options=(f"up{i}", f"down{i}"), correct=0, false_option=1, true_explanation="Heat rises.",
                      false_explanation="Cold wins.", source_explanation=None, provenance={}) for i in range(2)]
    write_dataset(items, [], {"items": len(items)}, path)
    return path


@pytest.mark.parametrize("damaged", ["dataset_info.json", "state.json", "summary.json", "data-00000-of-00001.arrow"])
def test_a_damaged_items_dir_is_one_usage_error_naming_the_file(project, damaged):
    dataset = faco_dataset(project.path / "facodata")
    file = dataset / damaged
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])  # a truncated copy
    result = run(project, "--faco-items", str(dataset))
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in result.stdout.str()
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and f"ERROR: faco: --faco-items {file}: " in errors[0], result.stderr.str()
    assert "truncated or damaged" in errors[0]


def test_seed_gets_its_own_baseline_and_report(project):
    write_baseline(project, clean=True, lying=False)  # smoke.json (seed 0) must not be used for seed 1
    result = run(project, "--faco-seed", "1")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*faco findings (smoke-seed1)*"])
    assert baseline_path(project, "smoke-seed1").exists()
    findings = json.loads((project.path / "reports" / "smoke-seed1" / "findings.json").read_text())["findings"]
    assert findings["clean"]["run"]["seeds"] == [1]
    assert not (project.path / "reports" / "smoke").exists()

    same = run(project, "--faco-seed", "0")  # the preset's own seed keeps the plain name
    same.assert_outcomes(passed=1, xfailed=1)


def test_parametrization_ids(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_grid='''
        def test_grid(faco_finding, faco_base, faco_ratio):
            faco_finding(holds=True, summary=f"{faco_base} {faco_ratio}", base=faco_base, ratio=faco_ratio)

        def test_heldout(faco_heldout, faco_group, faco_benchmark):
            pass
    ''')
    result = pytester.runpytest_inprocess("--faco-preset", "smoke", "--collect-only", "-q")
    ids = [line.split("::", 1)[1] for line in result.stdout.lines if "::" in line]
    ratios = ("cr0", "cr25", "cr50", "cr75", "cr100")
    assert [i for i in ids if i.startswith("test_grid")] == [
        f"test_grid[{base}-{ratio}]" for base in ("weak", "strong") for ratio in ratios]
    heldout = [i for i in ids if i.startswith("test_heldout")]
    assert len(heldout) == 2 * 5 * 2  # groups x (groups + 3 domains) x (heldout + history)
    assert "test_heldout[indomain-geography-history]" in heldout

    selected = pytester.runpytest_inprocess("--faco-preset", "smoke", "--faco-reports",
                                             str(pytester.path / "reports"), "-k", "strong and cr100")
    selected.assert_outcomes(failed=1, deselected=29)  # first run: baseline written
    stored = json.loads((pytester.path / "experiments" / "baselines" / "smoke.json").read_text())
    assert list(stored["findings"]) == ["grid-strong-cr100"]
    assert stored["findings"]["grid-strong-cr100"]["ratio"] == 100


@pytest.mark.parametrize("text", ['{"findings": {"clean": {"holds": "yes"}}}', "{bad"], ids=["holds-str", "json"])
def test_malformed_baseline_is_a_usage_error(project, text):
    baseline_path(project).write_text(text)
    result = run(project)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "smoke.json" in result.stderr.str()


def test_findings_store_numpy_numbers(tmp_path):
    import numpy as np

    from faco.findings import records

    finding = records.Finding("x", "x", True, {"n": np.int64(3), "acc": np.float32(0.5)}, "summary")
    records.store_finding(tmp_path / "findings.json", finding, run={})
    stored = json.loads((tmp_path / "findings.json").read_text())["findings"]["x"]
    assert (stored["n"], stored["acc"]) == (3, 0.5)
    assert not list(tmp_path.glob("*.tmp"))


# --- numeric regression -------------------------------------------------------------------------------

MEASURED = '''
import datasets  # noqa: F401 - --faco-items loads datasets; in-process runs must not import it twice (pyarrow types)
import pytest


def test_clean(faco_finding):
    faco_finding(holds=True, summary="clean", key=[{"abs": ABS, "r": -0.9}], key_metrics=["abs", "r"])


@pytest.mark.finding("lying")
def test_negative(faco_finding):
    faco_finding(holds=False, summary="no lie", key=[{"margin": MARGIN}], key_metrics=["margin"])
'''


def measured(project: pytest.Pytester, abs_: float, margin: float) -> None:
    project.makepyfile(test_toy=MEASURED.replace("ABS", str(abs_)).replace("MARGIN", str(margin)))


def with_tolerances(project: pytest.Pytester, rerun: dict | None = None) -> Path:
    """A reviewed baseline whose key numbers carry the measured seed noise (and rerun noise, if given)."""
    from faco.findings import records

    path = baseline_path(project)
    seeds = {"clean": {"key_per_seed": {"abs": [0.50, 0.52, 0.48], "r": [-0.9, -0.92, -0.88]}},
             "lying": {"key_per_seed": {"margin": [-0.05, -0.03, -0.07]}}}
    assert records.apply_tolerances(path, records.seed_noise(seeds), rerun, "3 seeds") == 2
    return path


def test_key_numbers_within_tolerance_pass(project):
    measured(project, 0.5, -0.05)
    run(project).assert_outcomes(failed=2)  # baseline written, every key number with its tolerance
    assert json.loads(baseline_path(project).read_text())["findings"]["clean"]["tolerance"]["abs"]["tolerance"] == 0.0005
    with_tolerances(project)
    measured(project, 0.5003, -0.0498)  # a rounding's worth: pinned numerics make a rerun bit-identical
    result = run(project)
    result.assert_outcomes(passed=1, xfailed=1)
    stored = json.loads(baseline_path(project).read_text())["findings"]["clean"]
    assert stored["tolerance"]["abs"] == {"tolerance": 0.0005, "rerun_noise": 0.0, "noise": 0.02, "seeds": 3}


def test_key_numbers_beyond_tolerance_fail_with_a_diff(project):
    measured(project, 0.5, -0.05)
    run(project)
    path = with_tolerances(project)
    measured(project, 0.502, -0.048)  # two questions in 1,000: far inside the seed noise, still a regression
    result = run(project)
    result.assert_outcomes(failed=2)  # the strict xfail does not swallow the regression
    result.stdout.fnmatch_lines(["*clean: key numbers moved beyond their tolerance*",
                                 "*abs*0.5000*0.5020*+0.0020*0.0005*0.0200*",
                                 "*lying: key numbers moved beyond their tolerance*"])
    obtained = json.loads(path.with_suffix(".obtained.json").read_text())["findings"]
    assert obtained["clean"]["key"]["abs"] == 0.502
    measured(project, 0.5, -0.05)
    run(project).assert_outcomes(passed=1, xfailed=1)
    assert not path.with_suffix(".obtained.json").exists()  # a clean run removes the stale file


def test_a_number_too_noisy_to_check_is_unchecked_and_said_so(project):
    measured(project, 0.5, -0.05)
    run(project)
    with_tolerances(project, rerun={"clean": {"abs": 0.2, "r": 0.01}, "lying": {"margin": 0.0}})
    stored = json.loads(baseline_path(project).read_text())["findings"]["clean"]["tolerance"]
    assert "unchecked" in stored["abs"] and "tolerance" not in stored["abs"]  # 3 x 0.2 > half of 0..1
    assert stored["r"]["tolerance"] == 0.03
    measured(project, 0.9, -0.05)
    result = run(project)
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*faco: 1 key number(s) unchecked*", "*clean abs: rerun noise 0.2000*"])


def test_regen_keeps_measured_noise(project):
    measured(project, 0.5, -0.05)
    run(project)
    path = with_tolerances(project)
    measured(project, 0.3, -0.05)
    run(project, "--faco-regen").assert_outcomes(failed=2)
    stored = json.loads(path.read_text())["findings"]["clean"]
    assert stored["key"]["abs"] == 0.3
    assert stored["tolerance"]["abs"] == {"tolerance": 0.0005, "rerun_noise": 0.0, "noise": 0.02, "seeds": 3}


def test_seeds_option_names_its_run(project):
    result = run(project, "--faco-seeds", "0,1")
    assert baseline_path(project, "smoke-seeds0-1").exists()
    assert run(project, "--faco-seeds", "0,x").ret == pytest.ExitCode.USAGE_ERROR


# --- live progress -----------------------------------------------------------------------------------

PROGRESS = '''
import logging


def test_progress():
    logging.getLogger("faco.training.trainer").info("pretrain: step 80/1600 loss 1.39")
'''


@pytest.mark.parametrize(("args", "streamed"), [((), True), (("-o", "log_cli_level=WARNING"), False),
                                                (("--log-cli-level", "WARNING"), False)],
                         ids=["default", "ini-warning", "option-warning"])
def test_experiments_stream_progress_unless_told_otherwise(pytester, args, streamed):
    """A cold run is never silent; a log level the user chose (option or ini) is theirs."""
    pytester.makeini("[pytest]\n")
    (pytester.path / "experiments").mkdir()
    (pytester.path / "experiments" / "test_progress.py").write_text(PROGRESS)
    result = pytester.runpytest_subprocess("experiments", "--faco-preset", "smoke", "-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    assert ("pretrain: step 80/1600" in result.stdout.str()) is streamed


def test_a_skipped_finding_records_its_reason_for_the_report(project):
    project.makepyfile(test_skipping="""
import pytest

@pytest.mark.finding("longer")
def test_longer(faco_finding):
    pytest.skip("preset 'smoke' fine-tunes for one epoch: no later epoch to compare")
""")
    run(project, "test_skipping.py")
    skipped = json.loads((project.path / "reports" / "smoke" / "skipped.json").read_text())
    assert skipped == {"longer": "preset 'smoke' fine-tunes for one epoch: no later epoch to compare"}
