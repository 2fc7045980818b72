"""faco's jobs on a real Slurm: the one-node cluster `scripts/local-slurm start` brings up (munged, slurmctld
and slurmd on loopback), never a mock. Every test here skips, saying why, where no Slurm answers.

    scripts/local-slurm start && export SLURM_CONF=/tmp/faco-slurm/slurm.conf
    python -m pytest unit_tests/test_slurm.py -q

What they show: the smoke study built as Slurm jobs (every training run and evaluation its own job) gives
the same artefacts, bit for bit, and the same findings as the local executor, and a test run then trains
and evaluates nothing itself; a training job interrupted mid-run (the signal Slurm sends at a time limit
or preemption) is requeued and ends with the weights of an uninterrupted run; a failing job fails the build
with its job id and log; two concurrent jobs that need one cache entry under the lease lock build it once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit

from faco.config.load import override, smoke
from faco.core.cache import Cache
from faco.findings import registry
from faco.study import execution
from faco.study.stages import Request
from faco.study.study import Study, finetuned

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
PROJECT = Path(__file__).resolve().parents[1]


def slurm_problem() -> str | None:
    """Why no Slurm can be used here, or None when one answers."""
    if shutil.which("sbatch") is None:
        return "no Slurm here (sbatch not found): start one with scripts/local-slurm start"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.SubprocessError as error:
        return f"sinfo did not answer: {error}"
    if out.returncode != 0 or not out.stdout.strip():
        return f"Slurm does not answer (sinfo: {out.stderr.strip()[-200:]}); set SLURM_CONF or run scripts/local-slurm start"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    problem = slurm_problem()
    if problem:
        pytest.skip(problem)


def slurm_preset(preset):  # noqa: ANN001, ANN201
    return override(preset, "execution.executor=slurm")


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **env})


def experiments(cache: Path, reports: Path, *options: str) -> subprocess.CompletedProcess:
    """`pytest experiments` on the smoke preset, as a user runs it (no smoke baseline: its verdicts are
    recorded, never compared; the findings file is what the test compares)."""
    return run([sys.executable, "-m", "pytest", "experiments", "-p", "no:cacheprovider", "-q", "--faco-preset", "smoke",
                f"--faco-cache={cache}", f"--faco-reports={reports}", "-o", f"faco_baselines={reports / 'baselines'}",
                *options], PROJECT)


def manifests(root: Path) -> dict[str, dict]:
    """Every entry's files (sha256 and size), by stage/key: what two caches must share bit for bit."""
    return {str(m.parent.relative_to(root)): {name: (f["sha256"], f["size"]) for name, f in
                                              json.loads(m.read_text())["files"].items()}
            for m in root.glob("*/*/MANIFEST.json")}


def test_the_smoke_study_as_slurm_jobs_equals_the_local_executor_and_pytest_then_builds_nothing(tmp_path):
    local = experiments(tmp_path / "local", tmp_path / "local-reports")
    assert "faco: this process trained 0 and evaluated 0" in local.stdout, local.stdout[-3000:]  # local jobs built it

    build = run([sys.executable, "-m", "faco.cli", "build", "--preset", "smoke", "--executor", "slurm",
                 "--cache", str(tmp_path / "slurm")], PROJECT)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    submitted = [line for line in build.stdout.splitlines() if " submitted " in f" {line}"]
    assert any("cr100 epoch 1 (instruction)" in line for line in submitted)  # every evaluation its own job
    assert any("strong cr50" in line and "(after" in line for line in submitted)  # afterok on its training
    tests = experiments(tmp_path / "slurm", tmp_path / "slurm-reports")
    assert "faco: this process trained 0 and evaluated 0 artefact(s)\n" in tests.stdout, tests.stdout[-3000:]

    assert manifests(tmp_path / "slurm") == manifests(tmp_path / "local")  # weights, scores, answers
    findings = [json.loads((tmp_path / r / "smoke" / "findings.json").read_text()) for r in ("local-reports", "slurm-reports")]
    assert findings[0] == findings[1] and len(findings[0]["findings"]) > 20


def test_a_training_job_interrupted_mid_run_is_requeued_and_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    # a model and data big enough that an epoch takes seconds, so the signal lands between two epochs
    preset = slurm_preset(smoke())
    for assignment in ("world.facts_per_domain=128", "items.per_training_domain=120", "finetune.epochs=3",
                       "finetune.batch_size=4", "pretrain.model.hidden_size=128", "pretrain.model.intermediate_size=256"):
        preset = override(preset, assignment)
    request = Request.of("finetune", base="strong", ratio=100)
    interrupted, clean = Study(preset, Cache(tmp_path / "slurm")), Study(preset, Cache(tmp_path / "clean"))
    interrupted.get(Request.of("pretrain"))  # built here: the job then trains only the fine-tuning run
    shutil.copytree(tmp_path / "slurm" / "pretrain", tmp_path / "clean" / "pretrain")  # the same base for both
    workdir = tmp_path / "slurm" / "finetune" / f"{interrupted.key(request)}.partial" / "work"

    pool = execution.executor(preset, tmp_path / "slurm" / "jobs", "training", threads=1)
    part = execution.Part("s0-finetune", "training", (request,), ("strong cr100",))
    handle = pool.submit(execution.Build(preset, str(tmp_path / "slurm"), (part,)))
    steps_per_epoch = -(-len(interrupted.items) // preset.finetune.batch_size)
    first = workdir / f"checkpoint-{steps_per_epoch}" / "trainer_state.json"
    deadline = time.monotonic() + 600
    while not first.exists():
        assert time.monotonic() < deadline and not handle.paths.result_pickle.exists(), _log(handle)
        time.sleep(0.1)
    subprocess.run(["scancel", "--signal=USR2", str(handle.job_id)], check=True)  # what Slurm sends before a limit
    _start_when_requeued(str(handle.job_id))
    handle.result()  # the requeued job's result
    log = _log(handle)
    assert "requeued" in log.lower() and f"resuming from {workdir / f'checkpoint-'}" in log, log

    ours = interrupted.checkpoint(finetuned("strong", 100)).path / "model.safetensors"
    theirs = clean.checkpoint(finetuned("strong", 100)).path / "model.safetensors"
    assert ours.read_bytes() == theirs.read_bytes()
    assert interrupted.losses("strong", 100) == clean.losses("strong", 100)


def _start_when_requeued(job_id: str) -> None:
    """Slurm holds a requeued job for two minutes (its begin time); the test cluster's admin lets it start now."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        if "Restarts=1" in state and "JobState=PENDING" in state:
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True)
            return
        time.sleep(0.5)


def _log(handle: submitit.Job) -> str:
    return "".join(Path(p).read_text(errors="replace") for p in (handle.paths.stdout, handle.paths.stderr)
                   if Path(p).exists())


def test_a_failing_slurm_job_fails_the_build_with_its_job_id_and_log_and_cancels_its_readers(tmp_path):
    diverging = slurm_preset(override(smoke(), "finetune.lr=1e30"))
    selected = [("correlation", {"faco_base": "weak", "faco_benchmark": "heldout"})]
    jobs = execution.plan(diverging, tmp_path, [0], execution.wanted(registry.reads(selected, diverging)))
    with pytest.raises(execution.BuildFailed) as error:
        execution.execute(diverging, tmp_path, jobs)
    message = str(error.value)
    ids = [line.split()[2] for line in message.splitlines() if line.startswith("- job ")]
    assert len(ids) == 5 and all(i.split("_")[0].isdigit() for i in ids), message  # Slurm's job ids
    assert "training diverged at step" in message and f"log: {tmp_path / 'jobs'}" in message
    assert "5 job(s) not run because they read a failed one" in message  # cancelled, never left pending
    waiting = subprocess.run(["squeue", "-h", "-t", "PENDING", "-o", "%i %r"], capture_output=True, text=True).stdout
    assert "Dependency" not in waiting, waiting


def shared_entry(root: str) -> str:
    """In a job: one cache entry that several jobs need, built slowly; each build leaves a line in builds.txt."""
    def build() -> str:
        with open(Path(root) / "builds.txt", "a") as out:
            out.write(f"{os.environ.get('SLURM_JOB_ID')}\n")
        time.sleep(4)
        return "built once"

    return Cache(Path(root) / "cache").get_or_build_json("shared", "one", build, "the entry two jobs need")


def test_two_jobs_that_need_one_entry_build_it_once_under_the_lease_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("FACO_CACHE_LOCK", "lease")  # what a network filesystem gets; sbatch passes it on
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the jobs cannot import this test module
    pool = submitit.SlurmExecutor(tmp_path / "jobs")
    pool.update_parameters(time=10, cpus_per_task=1)
    with pool.batch():
        handles = [pool.submit(shared_entry, str(tmp_path)) for _ in range(2)]
    assert [h.result() for h in handles] == ["built once", "built once"]
    assert len((tmp_path / "builds.txt").read_text().splitlines()) == 1
    assert not list((tmp_path / "cache" / "shared").glob("*.lease"))  # released
