"""The study's data flow, one way and cached: config -> world -> bases -> items -> nested corruption ->
fine-tuned checkpoints -> lm-eval scores, walked through the table of stages (faco.study.stages). Each
artefact is built on first use, so an experiment builds only what it asks for (`pytest experiments -k
recovery` trains no CR-50 model), and a warm rerun builds nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from faco.config.schema import ConfigError, Preset
from faco.core import numerics
from faco.core.cache import PARSE_ERRORS, Cache, cache_key, code_version
from faco.data.corruption import false_count
from faco.data.dataset import load_dataset_items
from faco.data.items import FacoItem
from faco.data.world_items import world_items
from faco.data.world import World, build_world
from faco.evaluation import contamination, groups
from faco.evaluation.benchmarks import BenchmarkSpec, resolve
from faco.evaluation.world_tasks import WorldTask, domain_tasks
from faco.models import llama
from faco.study.reads import run_label
from faco.study.stages import STAGES, Request

log = logging.getLogger("faco.study.study")


@dataclass(frozen=True)
class Model:
    """Which model an experiment measures, independent of seed; a study resolves it to a checkpoint."""

    base: str
    ratio: int | None = None  # None: the base itself; else instruction-tuned at this CR
    epoch: int | None = None  # None: after the last epoch
    recovered: bool = False  # the CR-100 model further tuned on the CR-0 data
    kind: str = "both"  # what its FALSE items falsify (faco.data.falsity): both (the paper's), answer or chain
    share: int = 100  # recovered: the percent of the CR-0 items it was re-trained on
    step: int | None = None  # a point of a training trajectory: the run's checkpoint after this many steps
    every: int | None = None  # ... of the run that saved one every this many steps (its own stage, trajectory)

    def label(self, epochs: int | None = None) -> str:
        """e.g. "strong cr100 epoch 3", "strong recovered", "strong", "strong cr100 step 38" (`epochs`: the
        last epoch's number)."""
        run = run_label(self.base, self.ratio, self.recovered, self.share, self.kind)
        if self.recovered or self.ratio is None:
            return run
        if self.step is not None:
            return f"{run} step {self.step}"
        epoch = self.epoch if self.epoch is not None else epochs
        return run + (f" epoch {epoch}" if epoch is not None else "")


def untuned(name: str) -> Model:
    """The base model `name` itself, before any instruction tuning."""
    return Model(name)


def finetuned(name: str, ratio: int, epoch: int | None = None) -> Model:
    return Model(name, ratio, epoch)


def recovered(name: str, share: int = 100) -> Model:
    """The CR-100 model re-trained on `share` percent of the clean items (0: the CR-100 model itself)."""
    return Model(name, 100) if share == 0 else Model(name, 100, recovered=True, share=share)


def stepped(name: str, ratio: int, every: int, step: int) -> Model:
    """The checkpoint after `step` steps of the run at `ratio` that saved one every `every` steps."""
    return Model(name, ratio, step=step, every=every)


def falsified(name: str, kind: str, ratio: int = 100) -> Model:
    """Tuned at `ratio` on items whose FALSE version falsifies `kind` (both: the paper's finetuned model)."""
    return Model(name, ratio, kind=kind)


@dataclass(frozen=True)
class Checkpoint:
    """A model directory plus the cache key that names it (evaluation keys build on it)."""

    label: str  # e.g. "strong cr100 epoch 3"
    path: Path
    key: str


class Study:
    """Lazily built, cached artefacts of one preset (one seed), resolved through the table of stages."""

    def __init__(self, preset: Preset, cache: Cache) -> None:
        self.preset = preset
        self.cache = cache
        self.used: dict[str, set[str]] = {}  # stage -> keys of the entries its results come from (provenance)
        self._keys: dict[str, str] = {}  # request -> its key, computed once
        self._resolved: dict[tuple[str, str], Any] = {}  # verified once per process, then reused
        llama.set_threads(preset.threads)
        described = numerics.describe()
        if not described["reproducible"]:
            log.warning("faco: CPU numerics are not pinned (%s): numbers may differ from another machine's and "
                        "from the stored baseline", described)

    # --- walking the table ---------------------------------------------------------------------------

    def key(self, request: Request) -> str:
        """`request`'s cache key: its stage's config slice, its inputs' keys (and content) and its code."""
        name = ident(request)
        if name not in self._keys:
            stage = STAGES[request.stage]
            if stage.view_key is not None:
                self._keys[name] = stage.view_key(self, request)
            else:
                inputs = tuple(self.key(r) for r in stage.inputs(self, request)) + stage.content(self, request)
                self._keys[name] = self.stage_key(request, inputs)
        return self._keys[name]

    def stage_key(self, request: Request, inputs: tuple[str, ...]) -> str:
        """`request`'s key given its inputs' keys (and content digests): the stage's own part of the key."""
        stage = STAGES[request.stage]
        modules = stage.code(self, request)
        return cache_key(stage.name, stage.config(self, request), inputs=inputs,
                         code=code_version(*modules) if modules else "")

    def get(self, request: Request) -> Any:
        """`request`'s artefact (an entry's directory, what a parsed entry holds, a JSON value, or a view),
        built once through the cache if missing or corrupt."""
        stage = STAGES[request.stage]
        if stage.output == "view":
            view = ("view", ident(request))
            if view not in self._resolved:
                self._resolved[view] = stage.build(self, request)
            return self._resolved[view]
        key = self.key(request)
        if (stage.name, key) not in self._resolved:
            for upstream in self.plan([request]):  # provenance: this entry and every entry it was made from
                if STAGES[upstream.stage].output != "view":
                    self.used.setdefault(upstream.stage, set()).add(self.key(upstream))
            describe = stage.describe(self, request)
            if stage.output == "json":
                value = self.cache.get_or_build_json(stage.name, key, lambda: stage.build(self, request), describe)
            elif stage.output == "parsed":
                value = self.cache.get_or_build_parsed(stage.name, key, lambda out: stage.build(self, request, out),
                                                       stage.parse, describe)
            else:
                value = self.cache.get_or_build(stage.name, key, lambda out: stage.build(self, request, out), describe)
            self._resolved[stage.name, key] = value
            self._drop_epochs(request)
        return self._resolved[stage.name, key]

    def _drop_epochs(self, request: Request) -> None:
        """With finetune.keep_epoch_checkpoints = false, only each run's last export stays (the cache lists the
        others as evicted, so the entry still verifies): a fine-tuning epoch's once scored (the longer-training
        finding reads its scores, nothing its checkpoint again), a recovery run's earlier ones once it is built
        (no request names them). A 13B grid then keeps 12 exports, not 56."""
        if self.preset.finetune.keep_epoch_checkpoints:
            return
        if request.stage == "recover":
            for epoch in range(1, self.preset.finetune.recovery_epochs):
                self.cache.evict("recover", self.key(request), f"epoch-{epoch}/", _UNREAD)
            return
        model = request["model"] if request.stage in ("eval", "benchmarks") else None
        if model is None or model.ratio is None or model.recovered or model.epoch in (None, self.preset.finetune.epochs):
            return
        run = self.run_of(model)
        self.cache.evict(run.stage, self.key(run), f"epoch-{model.epoch}/",
                         f"scored ({request.stage} {self.key(request)}); finetune.keep_epoch_checkpoints = false")

    def describe(self, request: Request) -> str:
        return STAGES[request.stage].describe(self, request)

    def plan(self, requests: list[Request]) -> Iterator[Request]:
        """`requests` and everything they read, each once, inputs before the stages that read them."""
        seen: set[str] = set()

        def walk(request: Request) -> Iterator[Request]:
            name = ident(request)
            if name in seen:
                return
            seen.add(name)
            for upstream in STAGES[request.stage].inputs(self, request):
                yield from walk(upstream)
            yield request

        for request in requests:
            yield from walk(request)

    # --- world and items ---------------------------------------------------------------------------

    @cached_property
    def world(self) -> World:
        return build_world(self.preset.world, self.preset.seed)

    @cached_property
    def world_split(self) -> tuple[list[FacoItem], list]:
        """The world's FACO items and the facts held back from them (the training domains' benchmarks)."""
        return world_items(self.world, self.preset.items.per_training_domain, self.preset.seed)

    @property
    def external_items(self) -> bool:
        """True when the items come from a FACO dataset (built by the study or by `faco build-dataset`)."""
        return self.preset.items.source != "world"

    @property
    def items_request(self) -> Request:
        return Request.of("external" if self.external_items else "items")

    @cached_property
    def items(self) -> list[FacoItem]:
        """The FACO items in training order (the same at every CR); a dataset's are checked against the
        benchmarks first: nothing trains on items whose questions a benchmark evaluates."""
        items = self.get(self.items_request)
        if self.external_items and self.on_benchmarks:
            config = self.preset.evaluation
            contamination.check([(item.source, item.question) for item in items], self.benchmark_specs,
                                Path(config.data_dir) if config.data_dir else None, config.allow_contamination)
        return items

    def external(self) -> list[FacoItem]:
        """A FACO dataset's items: built by the study ([items] source = "build") or read from a directory."""
        if "external" not in self._resolved:
            source = self.preset.items.source
            self._resolved["external"] = (self.get(Request.of("dataset")) if source == "build"
                                          else load_dataset_items(Path(source)))
        return self._resolved["external"]

    # --- models ------------------------------------------------------------------------------------

    @property
    def pretrained_bases(self) -> dict[str, int]:
        """The bases faco pre-trains: name -> the step whose checkpoint it is."""
        return {b.name: b.pretrain_steps for b in self.preset.bases if b.checkpoint is None}

    def model(self, base: str, ratio: int | None = None) -> Model:
        return Model(base, ratio)

    def run_of(self, model: Model) -> Request:
        """The stage whose artefact holds `model`: the base, its fine-tuning run at a CR, or the recovery run."""
        self.preset.base(model.base)  # an unknown base fails here, naming the known ones
        if model.recovered:
            return (Request.of("recover", base=model.base) if model.share == 100
                    else Request.of("redose", base=model.base, share=model.share))
        if model.ratio is None:
            return Request.of("base", base=model.base)
        # any CR of the nested order: the paper's findings read the preset's ratios, the dose-response a finer grid
        false_count(0, model.ratio)  # an integer percent, or one error naming it
        epochs = self.preset.finetune.epochs
        if model.epoch is not None and not 1 <= model.epoch <= epochs:
            raise ConfigError(f"epoch {model.epoch} is outside 1..{epochs}")
        if model.kind != "both":
            return Request.of("falsity", base=model.base, ratio=model.ratio, kind=model.kind)
        if model.step is not None:
            if not isinstance(model.every, int) or model.every < 1:
                raise ConfigError(f"{model.label()}: a trajectory's checkpoint needs its run's `every` (a positive "
                                  f"number of steps), got {model.every!r}")
            return Request.of("trajectory", base=model.base, ratio=model.ratio, every=model.every)
        return Request.of("finetune", base=model.base, ratio=model.ratio)

    def epoch_of(self, model: Model) -> int:
        if model.recovered:
            return self.preset.finetune.recovery_epochs
        return model.epoch if model.epoch is not None else self.preset.finetune.epochs

    def tuned_run(self, request: Request) -> tuple[int, int]:
        """(CR, epochs) of a tuning run: `finetune` at its ratio, or `recover` on the CR-0 data."""
        if request.stage in ("recover", "redose"):
            return 0, self.preset.finetune.recovery_epochs
        return request["ratio"], self.preset.finetune.epochs

    def checkpoint(self, model: Model) -> Checkpoint:
        request = Request.of("checkpoint", model=model)
        return Checkpoint(self.describe(request), self.get(request), self.key(request))

    def losses(self, base: str, ratio: int) -> list[dict[str, Any]]:
        """Per-step training loss of the fine-tuning run at `ratio`."""
        return json.loads((self.checkpoint(Model(base, ratio)).path.parent / "log.json").read_text())

    def trajectory(self, base: str, ratio: int, every: int) -> tuple[list[int], list[dict[str, Any]]]:
        """The run at `ratio` that saved a checkpoint every `every` steps (built if missing): the steps of its
        checkpoints (`stepped(base, ratio, every, step)` names each) and its per-step training loss."""
        entry = self.get(Request.of("trajectory", base=base, ratio=ratio, every=every))
        steps = sorted(int(path.name.removeprefix("step-")) for path in entry.glob("step-*") if path.is_dir())
        return steps, json.loads((entry / "log.json").read_text())

    # --- evaluation --------------------------------------------------------------------------------

    @property
    def on_benchmarks(self) -> bool:
        """True when the study measures registry benchmarks (the paper's) instead of the world's domains."""
        return bool(self.preset.evaluation.benchmarks)

    @cached_property
    def benchmark_specs(self) -> list[BenchmarkSpec]:
        return resolve(self.preset.evaluation.benchmarks) if self.on_benchmarks else []

    def domain_tasks(self, layout: str = "instruction", formats: tuple[str, ...] | None = None) -> list[WorldTask]:
        """The world's lm-eval benchmarks (one per domain and format) in `layout`."""
        return domain_tasks(self.world, self.world_split[1], self.preset.evaluation, layout,
                                formats or self.preset.evaluation.formats)

    def scores(self, model: Model, layout: str = "instruction") -> dict[str, dict[str, Any]]:
        """lm-eval results of `model` on every world benchmark in `layout`: {task: {acc, n, samples}}."""
        return self.get(Request.of("eval", model=model, layout=layout))

    def benchmark_scores(self, model: Model) -> dict[str, dict[str, Any]]:
        """lm-eval results of `model` on the preset's registry benchmarks."""
        return self.get(Request.of("benchmarks", model=model))

    def hidden(self, model: Model) -> dict[str, Any]:
        """`model`'s hidden states per layer on every world question, its picks and the logit lens
        (faco.evaluation.hidden), with `heldout` marking the held-out domains' questions."""
        arrays = self.get(Request.of("hidden", model=model))
        domains = [q.domain for task in self.domain_tasks("instruction", ("cloze",)) for q in task.questions]
        return {**arrays, "heldout": [d in self.preset.world.heldout_domains for d in domains]}

    def answers(self, model: Model, questions: list[dict[str, Any]], max_new_tokens: int) -> list[str]:
        """Greedy answers of `model` to `questions` (Table 2), cached like a score."""
        return self.get(Request.of("answers", model=model, questions=questions, max_new_tokens=max_new_tokens))

    def samples(self, model: Model, group: str, layout: str = "instruction") -> list[dict[str, Any]]:
        """Per-question records of `model` on a benchmark or group (indomain / heldout / all).

        World benchmarks are read in `layout`; registry benchmarks have one layout, lm-eval's own."""
        names = self.group_benchmarks(group)
        if self.on_benchmarks:
            scores = self.benchmark_scores(model)
            return [s for name in names if "samples" in scores[name] for s in scores[name]["samples"]]
        scores = self.scores(model, layout)
        fmt = self.preset.evaluation.formats[0]
        return [s for b in self.domain_tasks(layout, (fmt,)) if b.name in names for s in scores[b.task]["samples"]]

    def group_benchmarks(self, group: str) -> tuple[str, ...]:
        """The benchmarks a name stands for: a group (indomain / heldout / all) or one benchmark."""
        return groups.group_members(self.preset, group)

    def correct(self, model: Model, group: str, layout: str = "instruction") -> list[bool]:
        return [s["correct"] for s in self.samples(model, group, layout)]

    def values(self, model: Model, group: str, layout: str = "instruction") -> list[float]:
        """Per-question metric values (1/0 for accuracy, F1 for SQuAD, pass@1 for HumanEval)."""
        return [float(s.get("score", s["correct"])) for s in self.samples(model, group, layout)]


_UNREAD = "a recovery run's earlier epoch, never evaluated; finetune.keep_epoch_checkpoints = false"


def ident(request: Request) -> str:
    """A request's identity within one study (its stage and parameters; models by their repr)."""
    return request.stage + json.dumps({k: repr(v) if isinstance(v, Model) else v for k, v in request.params.items()},
                                      sort_keys=True)


class NotBuilt(LookupError):
    """Raised by a probe: an entry a request needs is not in the cache yet."""


class Probe(Cache):
    """A cache that builds nothing but file digests (what keys of real checkpoints are made of): tells which
    artefacts a run would build (`faco status`, the plan of the jobs that build it). It reads only verified
    entries; one that fails its check or its parse counts as not built (the run moves it aside, rebuilds)."""

    def get_or_build(self, stage, key, build, describe=""):  # noqa: ANN001, ANN201
        if stage == "digest":
            return super().get_or_build(stage, key, build, describe)
        if not self.has(stage, key):
            raise NotBuilt(f"{stage}/{key}")
        return self.path(stage, key)

    def get_or_build_parsed(self, stage, key, build, parse, describe=""):  # noqa: ANN001, ANN201
        entry = self.get_or_build(stage, key, build, describe)
        try:
            return parse(entry)
        except PARSE_ERRORS:
            raise NotBuilt(f"{stage}/{key} (does not parse)") from None

    def evict(self, stage: str, key: str, prefix: str, why: str) -> int:
        return 0  # a probe changes nothing in the cache it looks at


@dataclass(frozen=True)
class Status:
    """One row of `faco status`: a stage's artefact, its key (None: not known until an input is built)
    and whether the cache holds it."""

    request: Request
    label: str
    key: str | None
    cached: bool | None  # None: a view (part of another entry, or outside the cache)


def requests_of(reads: list[Any], on_benchmarks: bool) -> list[Request]:
    """What tests that read `reads` (faco.study.reads.Read) ask the study for: each model's scores in its
    layout (the registry's benchmarks, or the world's tasks), or its checkpoint alone where a test reads its
    training only; a trajectory's run alone (its steps are known once it has run)."""
    out = []
    for read in reads:
        base, ratio = read.base, read.ratio
        if read.every is not None:
            out.append(Request.of("trajectory", base=base, ratio=ratio, every=read.every))
            continue
        model = (recovered(base, read.share) if read.recovered
                 else Model(base, ratio, read.epoch if ratio is not None else None, kind=read.kind))
        layout = read.layout
        if not layout:
            out.append(Request.of("checkpoint", model=model))
        elif on_benchmarks:
            out.append(Request.of("benchmarks", model=model))
        else:
            out.append(Request.of("eval", model=model, layout=layout))
    return out


def status(preset: Preset, root: Path, requests: list[Request]) -> list[Status]:
    """What a run of `requests` needs, in build order, and what of it the cache at `root` holds; builds nothing."""
    study = Study(preset, Probe(root))
    rows = []
    for request in study.plan(requests):
        stage = STAGES[request.stage]
        label = study.describe(request)
        try:
            key = study.key(request)
        except NotBuilt:
            rows.append(Status(request, label, None, False))
            continue
        rows.append(Status(request, label, key, None if stage.output == "view" else study.cache.has(stage.name, key)))
    return rows


class Seeds:
    """The study over one or more seeds, as the experiments see it: per-question results are pooled
    across seeds (same questions per seed, so pooled accuracy is the mean over seeds), and per-seed
    values stay available for intervals."""

    def __init__(self, studies: list[Study]) -> None:
        if not studies:
            raise ConfigError("a study needs at least one seed")
        self.studies = studies

    @property
    def preset(self) -> Preset:
        return self.studies[0].preset

    @property
    def seeds(self) -> list[int]:
        return [study.preset.seed for study in self.studies]

    @property
    def on_benchmarks(self) -> bool:
        """True when the study measures registry benchmarks (the paper's) instead of the world's domains."""
        return self.studies[0].on_benchmarks

    def benchmark_mean(self, model: Model, group: str) -> float:
        """Mean over `group`'s benchmarks of each one's score: the paper's average over benchmarks (Fig. 5),
        which pooling questions would tilt towards the benchmarks with more of them."""
        members = self.studies[0].group_benchmarks(group)
        return sum(self.accuracy(model, name) for name in members) / len(members)

    def chance(self, benchmark: str) -> float | None:
        """Chance accuracy on `benchmark` (None where there is none: generation, or mixed chance levels)."""
        return groups.chance(self.preset, benchmark)

    def correct(self, model: Model, group: str, layout: str = "instruction") -> list[bool]:
        return [c for by_seed in self.by_seed(model, group, layout) for c in by_seed]

    def by_seed(self, model: Model, group: str, layout: str = "instruction") -> list[list[bool]]:
        """Per-question correctness, one list per seed (for seed-clustered intervals)."""
        return [study.correct(model, group, layout) for study in self.studies]

    def accuracy(self, model: Model, group: str, layout: str = "instruction") -> float:
        """Mean per-question score over seeds (accuracy; F1 or pass@1 on generation benchmarks)."""
        values = [v for study in self.studies for v in study.values(model, group, layout)]
        return sum(values) / len(values)

    def per_seed(self, model: Model, group: str, layout: str = "instruction") -> list[float]:
        """Score of `model` on `group` for each seed."""
        return [sum(v) / len(v) for v in (study.values(model, group, layout) for study in self.studies)]

    def cache_keys(self) -> dict[str, list[str]]:
        """Every cache entry the seeds' studies used, by stage: provenance for the report."""
        used: dict[str, set[str]] = {}
        for study in self.studies:
            for stage, keys in study.used.items():
                used.setdefault(stage, set()).update(keys)
        return {stage: sorted(keys) for stage, keys in sorted(used.items())}

    def each(self, measure: Callable[[Seeds], float]) -> list[float]:
        """`measure` applied to each seed alone: the per-seed values behind intervals and tolerances."""
        return [measure(Seeds([study])) for study in self.studies]

    def losses(self, base: str, ratio: int) -> list[list[float]]:
        """Per-step training losses at `ratio`, one curve per seed."""
        return [[row["loss"] for row in study.losses(base, ratio)] for study in self.studies]
