"""Cold runs in parallel: the independent stages of a study (seeds, bases x corruption ratios) are built
by a pool of processes before the tests read them, so a three-seed run costs about what one seed did.

Why processes and not threads: a tiny model's matrix products are too small to keep two threads busy
(a second thread buys little), while two one-thread processes training two models keep both cores busy.
The numbers do not change: CPU numerics are pinned (faco.core.numerics), so a model trained on one thread
in a worker is bit-identical to the one a serial run trains on two (`--faco-workers 1`: serial).

The plan comes from what the selected tests read (`-k` prebuilds only what the selection reads; the
findings registry, faco.findings.registry, says what each finding's test reads). It is an
optimisation only: the tests still ask the study for every artefact through the cache, so an entry the
plan missed is built lazily by the test, and a job that fails in a worker is left to the test, which
builds it again in-process and reports the error where it belongs.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from faco.core import lifetime, logs, numerics
from faco.core.cache import Cache
from faco.config.schema import Preset
from faco.evaluation.groups import ALL
from faco.study.reads import Read
from faco.study.study import Model, NotBuilt, Probe, Study

log = logging.getLogger("faco.study.parallel")


@dataclass(frozen=True)
class Job:
    """One training run of one seed and what to evaluate of it: the base itself (pre-training), a
    fine-tuning run at one CR (all its epochs), or the recovery run."""

    seed: int
    base: str
    ratio: int | None = None  # None: the base; else fine-tuned at this CR
    recovered: bool = False
    reads: tuple[tuple[int | None, str], ...] = ()  # (epoch, layout) evaluated; epoch None = the last

    @property
    def run(self) -> tuple[int, str, int | None, bool]:
        return self.seed, self.base, self.ratio, self.recovered

    def after(self, first_base: str) -> tuple[int, str, int | None, bool] | None:
        """The run this one starts from: the seed's pre-training (one run makes every base, started by
        the first base's job), or the CR-100 run for recovery."""
        if self.recovered:
            return self.seed, self.base, 100, False
        if self.ratio is None and self.base == first_base:
            return None
        return self.seed, first_base, None, False

    def models(self) -> list[tuple[Model, str]]:
        if self.recovered:
            return [(Model(self.base, 100, recovered=True), layout) for _, layout in self.reads]
        return [(Model(self.base, self.ratio, epoch if self.ratio is not None else None), layout)
                for epoch, layout in self.reads]

    def label(self) -> str:
        what = "recovered" if self.recovered else "base" if self.ratio is None else f"cr{self.ratio}"
        return f"seed {self.seed} {self.base} {what}"


def plan(reads: Iterable[Read], preset: Preset, seeds: Sequence[int]) -> list[Job]:
    """The jobs that build what the selected tests read (faco.findings.registry.reads), for every seed;
    every base's pre-training is planned whatever they read."""
    wanted: dict[tuple, set] = {(b.name, None, False): set() for b in preset.bases}  # pre-training first
    for base, ratio, recovered, epoch, layout in reads:
        evaluated = wanted.setdefault((base, ratio, recovered), set())
        if layout:
            evaluated.add((epoch, layout))
    return [Job(seed, base, ratio, recovered, tuple(sorted(evaluated, key=str)))
            for seed in seeds for (base, ratio, recovered), evaluated in sorted(wanted.items(), key=str)]


# --- running a job (in a worker, or probing in the parent) -----------------------------------------

def _run(study: Study, job: Job) -> None:
    """Build `job`'s checkpoint (and what it starts from) and its evaluations, through `study`'s cache."""
    study.checkpoint(Model(job.base, job.ratio, recovered=job.recovered))
    for model, layout in job.models():
        study.samples(model, ALL, layout)


def is_built(preset: Preset, root: Path, job: Job) -> bool:
    """Whether the cache under `root` holds every verified entry `job` reads (a warm run skips it)."""
    try:
        _run(Study(preset.replace(seed=job.seed), Probe(root)), job)
    except NotBuilt:
        return False
    return True


def _worker_init(queue: multiprocessing.Queue, parent: int) -> None:
    lifetime.die_with_parent(parent)  # a worker outliving a killed parent would wait for work for ever
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(logging.INFO)
    logs.quiet_noisy_libraries()  # as the parent does: a worker's records are the parent's lines


def _work(preset: Preset, root: str, job: Job, threads: int) -> None:
    """In a worker process: one job on `threads` torch threads (numerics pinned, so any count gives the
    same numbers)."""
    study = Study(preset.replace(seed=job.seed, threads=threads), Cache(Path(root)))
    _run(study, job)


class _Relay(logging.Handler):
    """Re-emits a worker's log records in the parent, under their own logger names."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def prebuild(preset: Preset, root: Path, jobs: list[Job], workers: int,
             on_error: Callable[[Job, BaseException], None] | None = None) -> int:
    """Build `jobs` on `workers` one-thread processes, each after the run it starts from; returns how
    many ran. Jobs already in the cache are skipped without starting a process (a warm run)."""
    todo = [job for job in jobs if not is_built(preset, root, job)]
    if not todo or workers < 2:
        return 0
    log.info("building %d training runs and their evaluations on %d processes", len(todo), workers)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: faco pins numerics before torch
    queue = context.Queue()
    listener = logging.handlers.QueueListener(queue, _Relay())
    listener.start()
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                 initargs=(queue, os.getpid())) as pool:
            _schedule(pool, preset, str(root), todo, workers, on_error)
    finally:
        listener.stop()
    return len(todo)


def _schedule(pool: ProcessPoolExecutor, preset: Preset, root: str, todo: list[Job], workers: int,
              on_error: Callable[[Job, BaseException], None] | None) -> None:
    """Submit each job once the run it starts from is done: pre-training first (the longest chain), then
    CR 100 (recovery starts from it), the other CRs, recovery last. A job alone gets every core as a thread."""
    first = preset.bases[0].name
    pending = sorted(todo, key=lambda j: (j.ratio is not None, j.recovered, j.ratio != 100, j.seed, j.base, str(j.ratio)))
    unfinished = {job.run for job in pending}
    running: dict[Future, Job] = {}
    while pending or running:
        ready = [j for j in pending if j.after(first) not in unfinished]
        for job in ready[: workers - len(running)]:
            threads = workers if len(ready) == 1 and not running else 1
            running[pool.submit(_work, preset, root, job, threads)] = job
            pending.remove(job)
        if not running:  # cannot happen: every run a job starts from is planned before it
            break
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            job = running.pop(future)
            unfinished.discard(job.run)  # failed too: its dependents build it again themselves
            if future.exception() is not None:
                log.warning("%s: failed in a worker (%s); the test that reads it builds it again",
                            job.label(), future.exception())
                if on_error:
                    on_error(job, future.exception())


def default_workers(preset: Preset) -> int:
    """One worker per core this process may use, for the embedded tier (tiny CPU models on world items).
    A real preset builds in the test process: its stages run on a GPU or under `accelerate launch`, its
    items may need a teacher server, and its bases are converted once; none of that splits over cores."""
    embedded = all(b.checkpoint is None for b in preset.bases) and preset.items.source == "world"
    if not embedded or preset.launch.launched:
        return 1
    return numerics.usable_cores()
