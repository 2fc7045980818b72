"""The study's grid as jobs, run through submitit: local processes by default, Slurm on a cluster, in-process
for debugging. One code path for all three; faco plans and submits, the engine runs.

    jobs = plan(preset, root, seeds, wanted)    # what the selected tests read and the cache lacks, as jobs
    execute(preset, root, jobs)                 # submit, wait, raise BuildFailed naming the failed jobs

Why jobs are stages of the study (faco.study.stages): each job builds one artefact (a training run, an
evaluation, the items a teacher writes) through the shared cache, so a job that ends early loses nothing
another finished, and a rerun submits only what is missing (what `faco status` lists as missing).

How jobs are cut (`[execution] jobs`): on a cluster every training run and every evaluation is its own job
("stage"), so an evaluation gets the GPUs of an evaluation job and 54 checkpoints are scored side by side;
on one machine a training run and the evaluations of its checkpoints are one part ("run"), and all the parts
of the plan are shared by at most one job per core ("pack"), each job taking the next part whose inputs are
built (a board of claim files in the jobs folder: `_Board`). A tiny model's evaluation, and on two cores even
its training run, is short against the interpreter start a job costs (~7 CPU s of imports), so a job per
part would pay that 39 times for three seeds; parts dealt to jobs in advance would leave a core idle at the
end while the other job finishes its share. Shared, the plan pays one start per core and its end waits for
one part.

How dependencies run: a Slurm job is submitted at once with `--dependency=afterok:<the jobs it reads>`
(jobs with the same kind and the same dependencies go out as one job array, at most `parallelism` of it at
once), so `faco build --no-wait` can leave the whole grid to the scheduler; a local job is submitted when
the jobs it reads have finished, at most `parallelism` at a time. Either way a failed job's dependents are
not run (cancelled on Slurm), every independent job still runs, and the build then fails naming the job,
its log and the log's last lines.

Preemption and time limits: `Build` is a submitit checkpointable; on the signal Slurm sends before a job's
time limit or a preemption, submitit requeues the same `Build`, whose training resumes from the last
checkpoint the trainer left in the entry's workdir (faco.training.trainer), to the same weights.

Without accounting (no slurmdbd, as on the one-node test cluster) `sacct` fails; a job's end is then read
from `squeue` (a job it no longer lists has ended; its result file says how), and submitit's warning about
sacct is filtered.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from faco.config.schema import EXECUTORS, ConfigError, JobResources, Preset
from faco.core import cache, lifetime, logs, numerics
from faco.core.cache import Cache
from faco.evaluation import answers
from faco.study.reads import Read
from faco.study.stages import STAGES, Request
from faco.study.study import (
    NotBuilt,
    Probe,
    Study,
    finetuned,
    ident,
    requests_of,
    untuned,
)

__all__ = ["EXECUTORS", "Build", "BuildFailed", "Job", "Part", "execute", "plan", "prebuilds", "wanted"]

log = logging.getLogger("faco.study.execution")

# The stages that are jobs, and the resources they take; the others (items, tasks, views) are cheap and are
# built by whichever job needs them first (the cache's lock makes that once).
JOB_KINDS = {"dataset": "evaluation", "pretrain": "training", "finetune": "training", "recover": "training",
             "eval": "evaluation", "benchmarks": "evaluation", "answers": "evaluation",
             "falsity": "training", "redose": "training", "trajectory": "training",
             "hidden": "evaluation"}  # the last four: -m beyond
ENDED = ("COMPLETED", "FAILED", "NOT RUN")
LOG_TAIL = 15  # lines of a failed job's log in the error


class BuildFailed(RuntimeError):
    """Some jobs failed; the message names each one (job id, what it built, its log and the log's end)."""


class PartsFailed(RuntimeError):
    """Some parts a job took failed (each one's traceback is in the job's log)."""


@dataclass(frozen=True)
class Part:
    """What one job builds without a scheduler's help: a training run with its evaluations ("run"), or one
    stage ("stage"). Local jobs share the plan's parts (`Job.shared`) to pay one interpreter start per core."""

    name: str  # unique in a plan, e.g. "s0-finetune-strong-cr50"
    kind: str  # "training" or "evaluation": which resources its job asks for
    requests: tuple[Request, ...]
    labels: tuple[str, ...]  # what each request builds, for people
    after: tuple[str, ...] = ()  # names of the parts it reads
    seed: int | None = None  # the seed whose study it builds; None: the job's preset's


@dataclass(frozen=True)
class Job:
    """One job: its parts, in order, in one process; the jobs whose artefacts it reads. A shared job (local
    "pack") takes turns with the plan's other shared jobs: each builds the next of the common parts whose
    inputs are built, and no part twice (`_Board`)."""

    name: str  # unique in a plan: its part's name ("stage", "run"); "pack-<i>of<n>" for a shared job
    seed: int
    kind: str  # "training" or "evaluation": which resources it asks for
    parts: tuple[Part, ...]
    after: tuple[str, ...] = ()  # names of the jobs it waits for
    shared: bool = False

    @property
    def requests(self) -> tuple[Request, ...]:
        return tuple(request for part in self.parts for request in part.requests)

    def label(self) -> str:
        if self.shared:
            seeds = sorted({part.seed for part in self.parts})
            return (f"{self.name}: the next ready of {len(self.parts)} runs and evaluations, "
                    f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
        heads = len(self.parts)
        extra = len(self.requests) - heads  # what each part builds after its first stage: its evaluations
        shown = self.parts[0].labels[0] + (f" (+{heads - 1} more)" if heads > 1 else "")
        return f"seed {self.seed} {shown}" + (f" (+{extra} evaluations)" if extra else "")


# --- the plan --------------------------------------------------------------------------------------

def wanted(reads: list[Read], table2_bases: Sequence[str] = (), first_seed: int | None = None
           ) -> Callable[[Study], list[Request]]:
    """What tests that read `reads` (faco.findings.registry.reads) ask a seed's study for, and Table 2's
    answers of `table2_bases` (asked of the first seed's models only)."""

    def requests(study: Study) -> list[Request]:
        out = requests_of(reads, study.on_benchmarks)
        if table2_bases and study.preset.seed == first_seed:
            questions = answers.heldout_questions(study, answers.TABLE2_PER_BENCHMARK)
            out += [Request.of("answers", model=model, questions=questions, max_new_tokens=answers.TABLE2_TOKENS)
                    for base in table2_bases for model in (untuned(base), finetuned(base, 100)) if questions]
        return out

    return requests


def prebuilds(preset: Preset, explicit: bool) -> bool:
    """Whether a test run builds its artefacts as jobs first: where an executor was asked for, and by default
    for the embedded tier on more than one core (tiny CPU models on world items, built side by side). A real
    preset otherwise builds in the test process, as one GPU or `accelerate launch` runs its stages."""
    config = preset.execution
    if config.executor == "local" and config.parallelism == 1:
        return False  # --faco-workers 1: serially, in the test process
    if explicit:
        return True
    embedded = all(b.checkpoint is None for b in preset.bases) and preset.items.source == "world"
    return embedded and not preset.launch.launched and local_limit(preset) > 1


def plan(preset: Preset, root: Path, seeds: Sequence[int], wanted: Callable[[Study], list[Request]],
         grouping: str | None = None) -> list[Job]:
    """The jobs that build what `wanted(study)` asks of each seed's study and the cache at `root` lacks, in
    dependency order; nothing is built (keys of real checkpoints hash their files)."""
    grouping = grouping or preset.execution.grouping
    parts = []
    for seed in seeds:
        study = Study(preset.replace(seed=seed), Probe(root))
        parts += _seed_parts(study, wanted(study), grouping)
    if grouping == "pack":
        return _pack(parts, local_limit(preset))
    return [Job(part.name, part.seed, part.kind, (part,), part.after) for part in parts]


def local_limit(preset: Preset) -> int:
    """Local jobs at once: `parallelism`, else one per usable core."""
    return preset.execution.parallelism or numerics.usable_cores()


def _seed_parts(study: Study, requests: list[Request], grouping: str) -> list[Part]:
    seed = study.preset.seed
    units: dict[str, Request] = {}  # ident -> request, in build order
    needs: dict[str, list[str]] = {}  # ident -> the job-stage units it reads
    for request in study.plan(requests):
        if request.stage in JOB_KINDS and not _cached(study, request):
            units[ident(request)] = request
            needs[ident(request)] = [ident(r) for r in _upstream(study, request) if ident(r) in units]
    group_of: dict[str, str] = {}  # unit -> the unit that heads its part
    members: dict[str, list[str]] = {}
    for unit, request in units.items():
        head = unit
        if grouping != "stage" and JOB_KINDS[request.stage] == "evaluation" and len(needs[unit]) == 1:
            upstream = needs[unit][0]
            if JOB_KINDS[units[upstream].stage] == "training":
                head = group_of[upstream]
        group_of[unit] = head
        members.setdefault(head, []).append(unit)
    names = {head: f"s{seed}-" + _slug(study, units[head]) for head in members}
    return [Part(names[head], JOB_KINDS[units[head].stage], tuple(units[u] for u in group),
                 tuple(study.describe(units[u]) for u in group),
                 tuple(dict.fromkeys(names[group_of[n]] for u in group for n in needs[u] if group_of[n] != head)),
                 seed)
            for head, group in members.items()]


def _pack(parts: list[Part], limit: int) -> list[Job]:
    """The plan's parts shared by at most `limit` jobs, as wide as the plan gets (the most parts at one depth
    of the dependency graph: a grid's CRs), every job holding every part in the order they are taken: those
    that more parts read (transitively) first, so pre-training, then CR 100 (its recovery reads it), then the
    plan's order."""
    if not parts:
        return []
    readers = _readers(parts)
    order = {part.name: i for i, part in enumerate(parts)}
    depth: dict[str, int] = {}
    for part in parts:  # dependency order
        depth[part.name] = 1 + max((depth[name] for name in part.after), default=-1)
    width = max(collections.Counter(depth.values()).values())
    shared = tuple(sorted(parts, key=lambda part: (-len(readers[part.name]), order[part.name])))
    kind = "training" if any(part.kind == "training" for part in parts) else "evaluation"
    count = min(limit, width)
    return [Job(f"pack-{i + 1}of{count}", shared[0].seed, kind, shared, shared=True) for i in range(count)]


def _readers(items: Sequence[Part | Job]) -> dict[str, set[str]]:
    """Each part's or job's readers, transitively (`items` in dependency order)."""
    readers: dict[str, set[str]] = {item.name: set() for item in items}
    for item in reversed(items):  # dependency order: an item's readers come after it
        for name in item.after:
            readers[name] |= {item.name} | readers[item.name]
    return readers


def _cached(study: Study, request: Request) -> bool:
    try:
        return study.cache.has(request.stage, study.key(request))
    except NotBuilt:  # its key needs an input's content that is not built yet
        return False


def _upstream(study: Study, request: Request) -> Iterator[Request]:
    """The nearest job stages `request` reads (through views and cheap stages)."""
    for upstream in STAGES[request.stage].inputs(study, request):
        if upstream.stage in JOB_KINDS:
            yield upstream
        else:
            yield from _upstream(study, upstream)


def _slug(study: Study, request: Request) -> str:
    text = f"{request.stage}-{study.describe(request)}".lower()
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:60]


# --- what a job runs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Build:
    """A job's function: build `requests` through the cache at `root`. Checkpointable: on preemption or at
    the time limit submitit requeues it unchanged, and its training resumes from the workdir."""

    preset: Preset
    root: str
    parts: tuple[Part, ...]
    owner: int | None = None  # a local job's build process: the job ends with it
    board: str | None = None  # a shared job's board (the folder of claims it shares with the plan's others)

    def __call__(self) -> dict[str, int]:
        """Build each part in order (a shared job: each next ready part no other job took); a part that fails,
        or reads one that failed, does not stop the others (they are independent: a grid's CRs); the job then
        fails naming each."""
        if self.owner is not None:
            lifetime.exit_with(self.owner)
        _job_logging()
        studies: dict[int, Study] = {}
        before = collections.Counter(cache.BUILT)
        turns = _Board(Path(self.board)) if self.board else _InOrder()
        failed: dict[str, str] = {}
        taken = 0
        for part, unbuilt in turns.take(self.parts):
            taken += 1
            if unbuilt:
                failed[part.name] = f"not run: it reads {unbuilt}"
            else:
                log.info("faco: building %s (%s)", part.name, ", ".join(part.labels))
                seed = self.preset.seed if part.seed is None else part.seed
                study = studies.setdefault(seed, Study(self.preset.replace(seed=seed), Cache(Path(self.root))))
                try:
                    for request in part.requests:
                        study.get(request)
                except Exception as error:
                    if len(self.parts) == 1 and not self.board:
                        raise
                    log.exception("faco: %s failed", part.name)
                    failed[part.name] = _summary(error)
            turns.finish(part.name, failed.get(part.name, ""))
        if failed:
            raise PartsFailed(f"{len(failed)} of the {taken} parts this job took did not build, the others are "
                              "cached: " + "; ".join(f"{name}: {why}" for name, why in failed.items()))
        return dict(collections.Counter(cache.BUILT) - before)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        log.warning("faco: job interrupted (time limit or preemption); requeued, it resumes from its last checkpoint")
        return submitit.helpers.DelayedSubmission(self)


class _InOrder:
    """A job's own parts, one after another: a part that reads a failed one is not run."""

    def __init__(self) -> None:
        self.failed: set[str] = set()

    def take(self, parts: Sequence[Part]) -> Iterator[tuple[Part, str]]:
        """(part, the failed part it reads, or "")."""
        for part in parts:
            yield part, next((name for name in part.after if name in self.failed), "")

    def finish(self, name: str, why: str) -> None:
        if why:
            self.failed.add(name)


class _Board:
    """The parts the shared jobs of one build take turns at, as files in one folder: a job claims a part by
    creating `<part>.claim` exclusively (O_EXCL: one winner; the file names the host and process), builds it,
    and leaves `<part>.done` or `<part>.failed` (written aside, then renamed into place, so a reader never sees
    half of one). A part is taken once its inputs are done, the first in the jobs' common order; one that reads
    a failed part, or a part whose claiming process ended without a mark (killed), is marked not run. The
    cache's lock would make a part built twice impossible anyway; the board keeps a second job from waiting on
    it instead of taking other work."""

    POLL_S = 0.2  # how often a job with no ready part looks again

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.host = socket.gethostname()

    def state(self, name: str) -> str:
        """"done", "failed", "running", or "" (free)."""
        for state in ("done", "failed"):
            if (self.folder / f"{name}.{state}").exists():
                return state
        try:
            host, pid = (self.folder / f"{name}.claim").read_text().split()
        except FileNotFoundError:
            return ""
        except ValueError:  # claimed this instant: the claimer is writing its name
            return "running"
        if host == self.host and not _alive(int(pid)):
            return "done" if (self.folder / f"{name}.done").exists() else "failed"  # it may have marked and ended
        return "running"

    def claim(self, name: str) -> bool:
        try:
            handle = os.open(self.folder / f"{name}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(handle, "w") as claim:
            claim.write(f"{self.host} {os.getpid()}\n")
        return True

    def finish(self, name: str, why: str) -> None:
        mark = self.folder / f"{name}.{'failed' if why else 'done'}"
        aside = mark.with_name(f".{mark.name}.{os.getpid()}")
        aside.write_text(why + "\n")
        os.replace(aside, mark)

    def take(self, parts: Sequence[Part]) -> Iterator[tuple[Part, str]]:
        """The parts this job claims, in `parts`' order as they become ready: (part, the failed part it reads,
        or "" to build it). Ends when every part is claimed."""
        while True:
            states = {part.name: self.state(part.name) for part in parts}  # an input outside them is built
            free = [part for part in parts if not states[part.name]]
            if not free:
                return
            for part in free:
                inputs = [name for name in part.after if name in states]
                unbuilt = next((name for name in inputs if states[name] == "failed"), "")
                if (unbuilt or all(states[name] == "done" for name in inputs)) and self.claim(part.name):
                    yield part, unbuilt
                    break  # from the top: a part it finished may have made an earlier one ready
            else:
                time.sleep(self.POLL_S)


def _alive(pid: int) -> bool:
    """Whether a process of this host still runs (a zombie, ended but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _summary(error: BaseException) -> str:
    """An error in one line: its type and the last line of its message (where a long one says what failed)."""
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[-1]}"


def _job_logging() -> None:
    """faco's progress lines on the job's stderr (its log), as the pytest process shows them."""
    root = logging.getLogger()
    if not any(getattr(h, "faco_job", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler.faco_job = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logs.quiet_noisy_libraries()


# --- executors -------------------------------------------------------------------------------------

def resources(preset: Preset, kind: str) -> tuple[JobResources, int, int]:
    """(the kind's resources, GPUs per node, nodes): a training job asks for the processes its [launch] needs,
    an evaluation job for its lm-eval processes ([evaluation] processes), unless [execution] says otherwise."""
    config = getattr(preset.execution, kind)
    nodes = preset.launch.nodes if kind == "training" else 1
    processes = preset.launch.processes // nodes if kind == "training" else preset.evaluation.processes
    gpus = config.gpus if config.gpus is not None else processes if processes > 1 else 0
    if 0 < gpus < processes:
        raise ConfigError(f"execution.{kind}.gpus = {gpus} per node, but a {kind} job runs {processes} processes "
                          f"per node ({'launch' if kind == 'training' else 'evaluation'}.processes): give it as many")
    return config, gpus, nodes


def executor(preset: Preset, folder: Path, kind: str, threads: int, after: Sequence[str] = ()) -> submitit.Executor:
    """A submitit executor for one kind of job (and, on Slurm, the jobs it must wait for)."""
    config = preset.execution
    spec, gpus, nodes = resources(preset, kind)
    if config.executor == "debug":
        return submitit.DebugExecutor(folder)
    if config.executor == "local":
        local = submitit.LocalExecutor(folder)
        local.update_parameters(timeout_min=spec.time_min, gpus_per_node=gpus)
        return local
    slurm = submitit.SlurmExecutor(folder, max_num_timeout=3)
    extra = dict(_sbatch_option(line) for line in config.sbatch)
    slurm.update_parameters(
        job_name=f"faco-{preset.name}-{kind}", time=spec.time_min, nodes=nodes, ntasks_per_node=1,
        cpus_per_task=threads, **({"gpus_per_node": gpus} if gpus else {}),
        **({"mem": f"{int(spec.mem_gb * 1024)}M"} if spec.mem_gb else {}),
        **{name: value for name in ("partition", "account", "qos") if (value := getattr(config, name))},
        array_parallelism=config.parallelism or 256, signal_delay_s=120,
        use_srun=nodes == 1,  # several nodes: the job runs once, on the first, and srun starts a launcher per node
        **({"dependency": "afterok:" + ":".join(after)} if after else {}),
        **({"additional_parameters": extra} if extra else {}))
    return slurm


def _sbatch_option(line: str) -> tuple[str, Any]:
    name, _, value = line[2:].partition("=")
    return name.replace("-", "_"), value if value else True


class _NoSacct(logging.Filter):
    """Drops submitit's warning that sacct failed: a cluster without accounting is read through squeue."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Bypassing sacct error" not in record.getMessage()


logging.getLogger("submitit").addFilter(_NoSacct())


# --- running a plan --------------------------------------------------------------------------------

@dataclass
class Running:
    job: Job
    handle: Any  # a submitit Job
    state: str = "PENDING"
    last_line: str = ""
    shown: float = float("-inf")  # when its last log line was last looked at


@dataclass
class Outcome:
    """What a build did: each job's state (COMPLETED, FAILED, NOT RUN, or still PENDING/RUNNING with
    --no-wait), its submitit handle and, for a failed one, why."""

    states: dict[str, str] = field(default_factory=dict)
    job_ids: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    built: dict[str, dict[str, int]] = field(default_factory=dict)  # a completed job's builds, per stage

    @property
    def failed(self) -> list[str]:
        return [name for name, state in self.states.items() if state == "FAILED"]


def execute(preset: Preset, root: Path, jobs: list[Job], *, wait: bool = True,
            progress: Callable[[str], None] | None = None, raise_on_failure: bool = True) -> Outcome:
    """Submit `jobs` through the preset's executor and (unless `wait` is False, Slurm only) wait for them;
    raises BuildFailed if any failed, after every job that could run has run."""
    config = preset.execution
    if not wait and config.executor != "slurm":
        raise ConfigError(f"--no-wait needs the slurm executor: {config.executor} jobs are submitted as their "
                          "inputs finish, by the process that waits for them")
    for kind in ("training", "evaluation"):
        resources(preset, kind)  # a misfit is one error before the first job goes out
    folder = Path(root) / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    say = progress or log.info
    runner = _Runner(preset, Path(root), folder, jobs, say)
    try:
        runner.run(wait)
    except BaseException:
        runner.cancel_local()  # a local job would outlive this process; a cluster job is paid for and kept
        raise
    if raise_on_failure and runner.outcome.failed:
        raise BuildFailed(runner.failure_report())
    return runner.outcome


class _Runner:
    """The scheduling loop: submit what is ready, watch what runs, until every job has ended."""

    def __init__(self, preset: Preset, root: Path, folder: Path, jobs: list[Job], say: Callable[[str], None]) -> None:
        self.preset, self.root, self.folder, self.say = preset, root, folder, say
        self.config = preset.execution
        self.slurm = self.config.executor == "slurm"
        self.pending = sorted(jobs, key=_priority(jobs))  # the longest chains first: pre-training, then CR 100
        self.running: dict[str, Running] = {}
        self.outcome = Outcome({job.name: "PENDING" for job in jobs})
        self.limit = local_limit(preset)  # local jobs at once (Slurm: the arrays' bound)
        self.board = folder / f"board-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"  # the shared jobs' claims

    def run(self, wait: bool) -> None:
        while self.pending or (wait and self._active()):
            self._skip_dependents_of_failures()
            self._submit(self._ready())
            if not wait and not self.pending:
                break
            if self._active():
                time.sleep(0 if self.config.executor == "debug" else self.config.poll_s if self.slurm else 0.5)
                self._watch()
        self._watch()

    def _active(self) -> list[Running]:
        return [r for r in self.running.values() if r.state not in ENDED]

    def _ready(self) -> list[Job]:
        states = self.outcome.states
        if self.slurm:  # afterok: a job may go out as soon as the jobs it waits for are submitted
            ready = [j for j in self.pending if all(d in self.running for d in j.after)]
        else:
            ready = [j for j in self.pending if all(states[d] == "COMPLETED" for d in j.after)]
            ready = ready[: max(0, self.limit - len(self._active()))]
        return ready

    def _skip_dependents_of_failures(self) -> None:
        states = self.outcome.states
        changed = True
        while changed:
            changed = False
            for job in list(self.pending):
                failed = [d for d in job.after if states[d] in ("FAILED", "NOT RUN")]
                if failed:
                    self.pending.remove(job)
                    states[job.name] = "NOT RUN"
                    self.outcome.errors[job.name] = f"not run: it reads {failed[0]}, which did not complete"
                    changed = True
            for running in self._active():  # a Slurm job waiting (afterok) on a failed one never starts
                failed = [d for d in running.job.after if states[d] in ("FAILED", "NOT RUN")]
                if failed:
                    running.handle.cancel(check=False)
                    self._end(running, "NOT RUN", f"cancelled: it reads {failed[0]}, which did not complete")
                    changed = True

    def _submit(self, ready: list[Job]) -> None:
        groups: dict[tuple[str, tuple[str, ...]], list[Job]] = {}
        for job in ready:
            after = tuple(self.running[d].handle.job_id for d in job.after
                          if self.slurm and self.outcome.states[d] != "COMPLETED")
            groups.setdefault((job.kind, after), []).append(job)
        for (kind, after), group in groups.items():
            threads = self._threads(kind, len(ready))
            pool = executor(self.preset, self.folder, kind, threads, after)
            with pool.batch() if len(group) > 1 and self.slurm else contextlib.nullcontext():
                owner = os.getpid() if self.config.executor == "local" else None
                handles = [pool.submit(Build(self.preset.replace(seed=j.seed, threads=threads), str(self.root),
                                             j.parts, owner, str(self.board) if j.shared else None)) for j in group]
            for job, handle in zip(group, handles):
                self.pending.remove(job)
                self.running[job.name] = Running(job, handle)
                self.outcome.job_ids[job.name] = str(handle.job_id)
                self.say(f"submitted {handle.job_id:>10}  {job.label()}"
                         + (f"  (after {', '.join(job.after)})" if job.after else ""))
                if self.config.executor == "debug":
                    self._finish_debug(self.running[job.name])

    def _threads(self, kind: str, ready: int) -> int:
        """Local: one thread per job, or every core for a job that runs alone (the numbers are the same:
        CPU numerics are pinned). Slurm and debug: the job's cores."""
        if self.config.executor == "local":
            return numerics.usable_cores() if ready == 1 and not self._active() else 1
        if self.config.executor == "debug":
            return self.preset.threads
        return getattr(self.config, kind).cpus

    def _finish_debug(self, running: Running) -> None:
        try:
            running.handle.result()
        except Exception as error:  # noqa: BLE001 - reported with the job, as any executor's failure
            self._end(running, "FAILED", f"{type(error).__name__}: {error}")
        else:
            self.outcome.built[running.job.name] = running.handle.result()
            self._end(running, "COMPLETED")

    def _watch(self) -> None:
        active = self._active()
        if not active:
            return
        queued = _slurm_queue() if self.slurm else {}
        for running in active:
            handle = running.handle
            if self.slurm:
                ended = str(handle.job_id) not in queued or handle.paths.result_pickle.exists()
                state = "ENDED" if ended else queued[str(handle.job_id)]
            else:
                ended = handle.done()
                state = "ENDED" if ended else "RUNNING"
            if ended:
                self._settle(running)
            elif state != running.state:
                running.state = state
                self.say(f"{state.lower():>19}  {handle.job_id}  {running.job.label()}")
            self._show_last_line(running)

    def _settle(self, running: Running) -> None:
        """An ended job: COMPLETED if its result file says so, FAILED (with why) otherwise."""
        handle = running.handle
        try:
            error = handle.exception()
        except Exception as missing:  # noqa: BLE001 - no result file: killed, out of memory, cancelled
            error = missing
        if error is None:
            self.outcome.built[running.job.name] = handle.result()
            self._end(running, "COMPLETED")
        else:
            self._end(running, "FAILED", _summary(error))

    def _end(self, running: Running, state: str, why: str = "") -> None:
        running.state = state
        self.outcome.states[running.job.name] = state
        if why:
            self.outcome.errors[running.job.name] = why
        self.say(f"{state.lower():>19}  {running.handle.job_id}  {running.job.label()}" + (f": {why}" if why else ""))

    def _show_last_line(self, running: Running) -> None:
        """The job's latest log line, at most once per poll_s (local jobs are watched more often)."""
        if running.state in ENDED or time.monotonic() - running.shown < self.config.poll_s:
            return
        running.shown = time.monotonic()
        line = _last_lines(running.handle, 1)
        if line and line != running.last_line:
            running.last_line = line
            self.say(f"{'':>19}  {running.handle.job_id}  | {line[:120]}")

    def cancel_local(self) -> None:
        if self.config.executor == "local":
            for running in self._active():
                running.handle.cancel(check=False)

    def failure_report(self) -> str:
        lines = [f"faco build: {len(self.outcome.failed)} job(s) failed; everything else that could run was "
                 "built and stays cached (run the build again to retry only what is missing):"]
        for name in self.outcome.failed:
            running = self.running[name]
            handle = running.handle
            lines.append(f"- job {handle.job_id} ({running.job.label()}): {self.outcome.errors.get(name, '')}")
            lines.append(f"  log: {handle.paths.stderr}")
            lines += [f"  | {line}" for line in _last_lines(handle, LOG_TAIL).splitlines()]
        skipped = [name for name, state in self.outcome.states.items() if state == "NOT RUN"]
        if skipped:
            lines.append(f"{len(skipped)} job(s) not run because they read a failed one: {', '.join(skipped)}")
        return "\n".join(lines)


def _priority(jobs: list[Job]) -> Callable[[Job], tuple[int, int]]:
    """Jobs that more jobs wait on (transitively) go first; otherwise the plan's order."""
    readers = _readers(jobs)
    order = {job.name: i for i, job in enumerate(jobs)}
    return lambda job: (-len(readers[job.name]), order[job.name])


def _last_lines(handle: Any, count: int) -> str:
    """The last `count` non-empty lines of a job's log (stderr, where faco logs; else stdout)."""
    for path in (handle.paths.stderr, handle.paths.stdout):
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            continue
        lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]  # a progress bar's latest state
        lines = [line for line in lines if line.strip() and not line.startswith("submitit ")]
        if lines:
            return "\n".join(lines[-count:])
    return ""


def _slurm_queue() -> dict[str, str]:
    """Job id -> state of every job Slurm still lists (pending, running, requeued); array tasks one by one."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise BuildFailed(f"faco build: squeue failed ({error}); the submitted jobs keep running: "
                          "watch them with squeue and run the build again to collect them") from None
    return dict(line.split(maxsplit=1) for line in out.splitlines() if line.strip())
