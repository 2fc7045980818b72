"""The study's jobs (faco.study.execution): what the plan submits for a selection, how jobs are cut and
ordered, that a build through local jobs gives bit-identical artefacts to a serial one, and that a failed
job fails the build naming the job, its log and the log's end. The Slurm side: test_slurm.py.

    python -m pytest unit_tests/test_execution.py -q
"""

from __future__ import annotations

import collections
import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from faco.config.load import load_preset, override, smoke
from faco.config.schema import ConfigError, Preset
from faco.core import cache as cache_module
from faco.core.cache import Cache
from faco.evaluation.groups import ALL
from faco.findings import registry
from faco.study import execution
from faco.study.study import Study, finetuned, recovered

RECOVERY = [("recovery", {"faco_base": "strong", "faco_group": "heldout"})]


def plan(selected: list[tuple[str, dict]], preset: Preset, seeds: list[int], root: Path = Path("/nonexistent"),
         grouping: str | None = None) -> list[execution.Job]:
    """The plan of the selected tests, as the plugin makes it: the registry says what each reads."""
    return execution.plan(preset, root, seeds, execution.wanted(registry.reads(selected, preset)), grouping)


def every_experiment(preset: Preset) -> list[tuple[str, dict]]:
    """(finding, parameters) of every experiment, parametrized as the plugin does (one benchmark each)."""
    bases = [b.name for b in preset.bases]
    per_base = [(name, {"faco_base": b, "faco_benchmark": "heldout"}) for b in bases
                for name in ("knowledge", "correlation", "loss", "recovery", "lying")]
    longer = [("longer", {"faco_base": b, "faco_ratio": r}) for b in bases for r in preset.corruption.ratios]
    return [*per_base, *longer, ("sensitivity", {"faco_benchmark": "heldout"}), ("sensitivity_majority", {})]


def stages(job: execution.Job) -> list[str]:
    return [request.stage for request in job.requests]


def test_tiny_plan_of_every_experiment_is_a_job_per_training_run_with_its_evaluations():
    preset = override(load_preset("tiny"), "execution.jobs=run")
    jobs = plan(every_experiment(preset), preset, [0, 1, 2])
    assert len(jobs) == 3 * (1 + 2 * 5 + 2)  # seeds x (pre-training, bases x CRs, recoveries)
    by_name = {job.name: job for job in jobs}
    assert by_name["s1-finetune-strong-cr100"].after == ("s1-pretrain-bases---strong----weak",)
    assert by_name["s1-recover-strong-recovered"].after == ("s1-finetune-strong-cr100",)
    assert stages(by_name["s2-finetune-weak-cr50"]) == ["finetune", "eval", "eval", "eval"]  # every epoch
    assert stages(by_name["s0-pretrain-bases---strong----weak"]) == ["pretrain", "eval", "eval"]  # what each knows
    assert {job.kind for job in jobs} == {"training"}


def test_local_jobs_share_the_plan_one_job_per_core_taking_the_longest_chains_first():
    preset = override(load_preset("tiny"), "execution.parallelism=2")
    runs = plan(every_experiment(preset), override(preset, "execution.jobs=run"), [0, 1, 2])
    jobs = plan(every_experiment(preset), preset, [0, 1, 2])
    assert [job.name for job in jobs] == ["pack-1of2", "pack-2of2"]  # one per core, for all three seeds
    assert jobs[0].parts == jobs[1].parts and all(job.shared and not job.after for job in jobs)
    assert sorted(p.name for p in jobs[0].parts) == sorted(job.name for job in runs)  # every run, once
    order = [p.name for p in jobs[0].parts]
    assert order[:4] == [f"s{s}-pretrain-bases---strong----weak" for s in (0, 1, 2)] + ["s0-finetune-weak-cr100"]
    assert order.index("s2-finetune-strong-cr100") < order.index("s0-finetune-weak-cr0")  # recovery reads CR 100
    assert {p.seed for p in jobs[0].parts} == {0, 1, 2}
    assert len(plan(every_experiment(preset), override(preset, "execution.parallelism=16"), [0])) == 10  # CRs
    with pytest.raises(ConfigError, match="jobs = pack shares parts between the jobs of one machine"):
        override(override(preset, "execution.jobs=pack"), "execution.executor=slurm")  # before any plan


def tasks_part(name: str, layout: str, after: tuple[str, ...] = ()) -> execution.Part:
    return execution.Part(name, "evaluation", (execution.Request.of("tasks", layout=layout),), (layout,), after)


def test_a_failed_part_leaves_the_others_built_and_what_reads_it_unrun_in_order_or_shared(tmp_path: Path):
    parts = (tasks_part("s0-bad", "no-such-layout"), tasks_part("s0-reader", "letter", ("s0-bad",)),
             tasks_part("s0-good", "instruction"))
    for board in (None, str(tmp_path / "board")):
        with pytest.raises(execution.PartsFailed, match="2 of the 3 parts this job took did not build") as error:
            execution.Build(smoke(), str(tmp_path), parts, board=board)()
        assert "s0-bad: KeyError: 'no-such-layout'; s0-reader: not run: it reads s0-bad" in str(error.value)
        study = Study(smoke(), Cache(tmp_path))
        assert [study.cache.has("tasks", study.key(part.requests[0])) for part in parts[1:]] == [False, True]
    marks = sorted(path.name for path in (tmp_path / "board").iterdir())
    assert marks == ["s0-bad.claim", "s0-bad.failed", "s0-good.claim", "s0-good.done", "s0-reader.claim",
                     "s0-reader.failed"]


def test_a_shared_part_is_claimed_once_and_one_whose_process_died_unmarked_counts_as_failed(tmp_path: Path):
    board = execution._Board(tmp_path / "board")
    assert board.claim("s0-a") and not board.claim("s0-a")  # exclusive: a second job takes another part
    assert board.state("s0-a") == "running"
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    (tmp_path / "board" / "s0-b.claim").write_text(f"{board.host} {ended.pid}\n")  # killed mid-part
    assert board.state("s0-b") == "failed"
    with pytest.raises(execution.PartsFailed, match="s0-reader: not run: it reads s0-b"):
        execution.Build(smoke(), str(tmp_path), (tasks_part("s0-reader", "letter", ("s0-b",)),
                                                 tasks_part("s0-b", "instruction")), board=str(board.folder))()


def test_a_shared_job_waits_for_a_part_another_job_builds_and_then_takes_its_reader(tmp_path: Path):
    board = execution._Board(tmp_path / "board")
    parts = (tasks_part("s0-first", "instruction"), tasks_part("s0-then", "letter", ("s0-first",)))
    assert board.claim("s0-first")  # another job is building it
    taken = board.take(parts)
    start = time.monotonic()  # before the timer: it marks the input done 0.5 s after its own start
    threading.Timer(0.5, board.finish, ("s0-first", "")).start()
    assert next(taken) == (parts[1], "")  # only once the part it reads is done
    assert time.monotonic() - start >= 0.5
    board.finish("s0-then", "")
    assert list(taken) == []


def test_stage_jobs_give_each_evaluation_its_own_job_after_its_training_run():
    preset = load_preset("tiny")
    jobs = plan([("correlation", {"faco_base": "weak", "faco_benchmark": "heldout"})], preset, [0], grouping="stage")
    assert [(j.kind, stages(j), j.after) for j in jobs][:3] == [
        ("training", ["pretrain"], ()),
        ("training", ["finetune"], ("s0-pretrain-bases---strong----weak",)),
        ("evaluation", ["eval"], ("s0-finetune-weak-cr0",))]
    assert len(jobs) == 1 + 5 + 5  # pre-training, five CRs, their last epochs
    assert load_preset("tiny").execution.grouping == "pack"
    assert override(load_preset("tiny"), "execution.executor=slurm").execution.grouping == "stage"


def test_the_longest_chains_go_first():
    preset = override(smoke(), "execution.jobs=run")
    jobs = plan(RECOVERY, preset, [0])
    order = sorted(jobs, key=execution._priority(jobs))
    assert [j.name for j in order][:2] == ["s0-pretrain-bases---strong----weak", "s0-finetune-strong-cr100"]


def test_nothing_planned_for_a_finding_that_reads_nothing():
    assert plan([("my_finding", {"faco_base": "weak"})], smoke(), [0]) == []


def test_real_presets_build_in_the_test_process_unless_an_executor_is_asked_for():
    assert execution.prebuilds(smoke(), explicit=False) == (execution.numerics.usable_cores() > 1)
    smol = load_preset("smol-ci")
    assert not execution.prebuilds(smol, explicit=False)  # a real base: GPU or accelerate, not cores
    assert execution.prebuilds(smol, explicit=True)
    serial = override(smoke(), "execution.parallelism=1")
    assert not execution.prebuilds(serial, explicit=True)  # --faco-workers 1: serially, in the test process


def test_execution_settings_are_checked_and_take_no_part_in_any_key():
    with pytest.raises(ConfigError, match="unknown executor 'pbs'"):
        override(smoke(), "execution.executor=pbs")
    with pytest.raises(ConfigError, match="not an sbatch option"):
        override(smoke(), 'execution.sbatch=["constraint=a100"]')
    preset = smoke()
    other = preset.replace(execution=dataclasses.replace(preset.execution, executor="slurm", partition="gpu"))
    study, elsewhere = Study(preset, Cache(Path("/nonexistent"))), Study(other, Cache(Path("/nonexistent")))
    request = execution.Request.of("eval", model=finetuned("weak", 50), layout="instruction")
    assert study.key(request) == elsewhere.key(request)


def test_no_wait_needs_slurm(tmp_path):
    with pytest.raises(ConfigError, match="--no-wait needs the slurm executor"):
        execution.execute(smoke(), tmp_path, [], wait=False)


def test_a_job_asks_for_the_processes_its_stage_runs():
    paper = load_preset("paper")
    assert execution.resources(paper, "training")[1:] == (paper.launch.processes, 1)
    assert execution.resources(paper, "evaluation")[1] == paper.evaluation.processes
    assert execution.resources(smoke(), "training")[1] == 0  # CPU
    two_nodes = override(override(paper, "launch.nodes=2"), "execution.evaluation.gpus=8")
    assert execution.resources(two_nodes, "training")[1:] == (4, 2)  # GPUs per node
    with pytest.raises(ConfigError, match="execution.evaluation.gpus = 1 per node, but a evaluation job runs 8"):
        execution.resources(override(paper, "execution.evaluation.gpus=1"), "evaluation")


def test_a_multi_node_training_job_runs_once_and_leaves_the_nodes_to_its_srun(tmp_path):
    """submitit's own srun would start the job on every node; faco's launcher starts one per node itself."""
    two_nodes = override(override(load_preset("paper"), "launch.nodes=2"), "execution.executor=slurm")
    script = execution.executor(two_nodes, tmp_path, "training", 32)._make_submission_file_text("python job.py", "x")
    assert "#SBATCH --nodes=2" in script and "#SBATCH --gpus-per-node=4" in script
    assert "srun" not in script.split("#SBATCH")[-1].split("\n", 1)[1]  # the command runs bare, once
    one = execution.executor(override(two_nodes, "launch.nodes=1"), tmp_path, "training", 32)
    assert "srun" in one._make_submission_file_text("python job.py", "x")


@pytest.mark.slow
def test_local_jobs_build_bit_identical_artefacts_to_a_serial_run_and_a_warm_plan_is_empty(tmp_path: Path):
    preset = override(smoke(), "execution.parallelism=2")
    jobs = plan(RECOVERY, preset, [0, 1], tmp_path / "jobs")
    outcome = execution.execute(preset, tmp_path / "jobs", jobs)
    assert set(outcome.states.values()) == {"COMPLETED"} and len(jobs) == 2
    planned = collections.Counter(request.stage for request in jobs[0].requests)
    built = [collections.Counter(outcome.built[job.name]) for job in jobs]
    assert all(built) and {stage: n for stage, n in sum(built, collections.Counter()).items()
                           if stage in planned} == planned  # both jobs worked; each part once
    board = next((tmp_path / "jobs" / "jobs").glob("board-*"))
    for part in jobs[0].parts:  # taken only once what it reads was done
        claimed = (board / f"{part.name}.claim").stat().st_mtime_ns
        assert all(claimed >= (board / f"{name}.done").stat().st_mtime_ns for name in part.after)
    assert plan(RECOVERY, preset, [0, 1], tmp_path / "jobs") == []  # warm: nothing to submit
    for seed in (0, 1):
        serial = Study(preset.replace(seed=seed), Cache(tmp_path / "serial"))
        built = Study(preset.replace(seed=seed), Cache(tmp_path / "jobs"))
        for model in (finetuned("strong", 100), recovered("strong")):
            assert serial.samples(model, ALL) == built.samples(model, ALL)
            weights = [(s.checkpoint(model).path / "model.safetensors").read_bytes() for s in (serial, built)]
            assert weights[0] == weights[1]
        assert serial.losses("strong", 0) == built.losses("strong", 0)


@pytest.mark.slow
def test_a_failed_job_fails_the_build_naming_it_and_its_log_and_skips_what_reads_it(tmp_path: Path):
    diverging = override(override(smoke(), "finetune.lr=1e30"), "execution.jobs=stage")
    jobs = plan([("correlation", {"faco_base": "weak", "faco_benchmark": "heldout"})], diverging, [0], tmp_path)
    with pytest.raises(execution.BuildFailed) as error:
        execution.execute(diverging, tmp_path, jobs)
    message = str(error.value)
    assert "5 job(s) failed" in message and "training diverged at step" in message  # every CR
    assert message.count("  log: ") == 5 and "| " in message  # each failed job's log and its last lines
    assert "5 job(s) not run because they read a failed one" in message  # the evaluations
    assert (tmp_path / "pretrain").is_dir()  # what could run ran, and stays cached


def test_the_debug_executor_builds_in_this_process(tmp_path: Path):
    preset = override(smoke(), "execution.executor=debug")
    request = execution.Request.of("tasks", layout="instruction")
    job = execution.Job("s0-tasks", 0, "evaluation", (execution.Part("s0-tasks", "evaluation", (request,), ("tasks",)),))
    before = cache_module.BUILT["tasks"]
    outcome = execution.execute(preset, tmp_path, [job])
    assert outcome.states == {"s0-tasks": "COMPLETED"} and cache_module.BUILT["tasks"] == before + 1


def test_a_slurm_job_waits_for_what_it_reads_through_afterok(tmp_path):
    preset = override(smoke(), "execution.executor=slurm")
    script = execution.executor(preset, tmp_path, "evaluation", 1, after=["41", "42_3"])._make_submission_file_text(
        "python job.py", "x")
    assert "#SBATCH --dependency=afterok:41:42_3" in script
    assert "dependency" not in execution.executor(preset, tmp_path, "evaluation", 1)._make_submission_file_text(
        "python job.py", "x")
