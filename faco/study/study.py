"""The study's data flow, one way and cached: config -> world -> bases -> items -> nested corruption ->
fine-tuned checkpoints -> lm-eval scores. Each stage is built on first use, so an experiment builds only
what it asks for (`pytest experiments -k recovery` trains no CR-50 model), and a warm rerun builds
nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from faco.core import numerics
from faco.core.cache import Cache, cache_key, code_version, library_versions
from faco.config.schema import ConfigError, Preset
from faco.evaluation.runner import ALL, GROUPS, HELDOUT, INDOMAIN  # noqa: F401 - the experiments import them here
from faco.data.items import FacoItem, instruction_example, read_jsonl, world_item, world_items, write_jsonl

log = logging.getLogger("faco.study.study")


@dataclass(frozen=True)
class Model:
    """Which model an experiment measures, independent of seed; a study resolves it to a checkpoint."""

    base: str
    ratio: int | None = None  # None: the base itself; else instruction-tuned at this CR
    epoch: int | None = None  # None: after the last epoch
    recovered: bool = False  # the CR-100 model further tuned on the CR-0 data


def base(name: str) -> Model:
    return Model(name)


def finetuned(name: str, ratio: int, epoch: int | None = None) -> Model:
    return Model(name, ratio, epoch)


def recovered(name: str) -> Model:
    return Model(name, 100, recovered=True)


@dataclass(frozen=True)
class Checkpoint:
    """A model directory plus the cache key that names it (evaluation keys build on it)."""

    label: str  # e.g. "strong cr100 epoch 3"
    path: Path
    key: str


class Study:
    """Lazily built, cached artefacts of one preset (one seed)."""

    def __init__(self, preset: Preset, cache: Cache) -> None:
        self.preset = preset
        self.cache = cache
        self.used: dict[str, set[str]] = {}  # stage -> cache keys this study read or built (provenance)
        self._resolved: dict[tuple[str, str], Any] = {}  # verified once per process, then reused
        from faco.models import llama

        llama.set_threads(preset.threads)
        described = numerics.describe()
        if not described["reproducible"]:
            log.warning("faco: CPU numerics are not pinned (%s): numbers may differ from another machine's and "
                        "from the stored baseline", described)

    def _get(self, stage: str, key: str, build: Callable[[Path], None], describe: str) -> Path:
        if (stage, key) not in self._resolved:
            self.used.setdefault(stage, set()).add(key)
            self._resolved[stage, key] = self.cache.get_or_build(stage, key, build, describe=describe)
        return self._resolved[stage, key]

    def _get_parsed(self, stage: str, key: str, build: Callable[[Path], None], parse: Callable[[Path], Any],
                    describe: str) -> Any:
        """What `parse` reads from the entry, verified first (faco.core.cache: one that does not parse is rebuilt)."""
        if (stage, key) not in self._resolved:
            self.used.setdefault(stage, set()).add(key)
            self._resolved[stage, key] = self.cache.get_or_build_parsed(stage, key, build, parse, describe=describe)
        return self._resolved[stage, key]

    def _get_json(self, stage: str, key: str, compute: Callable[[], Any], describe: str) -> Any:
        if (stage, key) not in self._resolved:
            self.used.setdefault(stage, set()).add(key)
            self._resolved[stage, key] = self.cache.get_or_build_json(stage, key, compute, describe=describe)
        return self._resolved[stage, key]

    # --- world and items ---------------------------------------------------------------------------

    @cached_property
    def world(self):  # noqa: ANN201 - faco.data.world.World; imported lazily with torch-free modules
        from faco.data.world import build_world

        return build_world(self.preset.world, self.preset.seed)

    @cached_property
    def _split(self) -> tuple[list[FacoItem], list]:
        return world_items(self.world, self.preset.items.per_training_domain, self.preset.seed)

    @property
    def external_items(self) -> bool:
        """True when the items come from a FACO dataset built by `faco build-dataset`."""
        return self.preset.items.source != "world"

    @cached_property
    def _external(self) -> list[FacoItem]:
        from faco.data.build import load_dataset_items

        if self.preset.items.source == "build":
            return self._built_dataset()
        return load_dataset_items(Path(self.preset.items.source))

    def _built_dataset(self) -> list[FacoItem]:
        """The items of the FACO dataset this preset's [items.build] describes, built once (faco.data.built_items)."""
        from faco.data.build import load_dataset_items

        from faco.models import checkpoints

        from faco.data import built_items

        spec = self.preset.items.build
        teacher = checkpoints.resolve("teacher", spec.serve, self.cache) if spec.serve else None
        key = built_items.key(spec, self.preset.seed, teacher[1] if teacher else f"{spec.base_url}|{spec.model}")
        return self._get_parsed("dataset", key,
                                lambda out: built_items.build(spec, self.preset.seed, out / "dataset", self.cache, teacher),
                                lambda entry: load_dataset_items(entry / "dataset"),
                                describe=f"FACO items from {', '.join(spec.sources)}")

    @cached_property
    def items_key(self) -> str:
        if self.external_items:  # keyed by content: a rebuilt dataset is a new input
            content = hashlib.sha256("".join(json.dumps(i.to_dict(), sort_keys=True) for i in self._external).encode())
            return cache_key("items", {"source": "dataset", "seed": self.preset.seed}, inputs=(content.hexdigest(),))
        config = {"world": self.preset.world, "items": self.preset.items, "seed": self.preset.seed}
        return cache_key("items", config, code=stage_code("faco.data.items"))

    @cached_property
    def items(self) -> list[FacoItem]:
        """The FACO items in training order (the same at every CR)."""
        if self.external_items:
            self._check_contamination()
            return self._external
        return self._get_parsed("items", self.items_key, lambda out: write_jsonl(self._split[0], out / "items.jsonl"),
                                lambda entry: read_jsonl(entry / "items.jsonl"),
                                describe=f"{len(self._split[0])} world items")

    def _check_contamination(self) -> None:
        """Before anything trains: items whose questions the preset's benchmarks evaluate are refused."""
        if not self.registry:
            return
        from faco.evaluation import contamination

        config = self.preset.evaluation
        contamination.check([(item.source, item.question) for item in self._external], self.benchmark_specs,
                            Path(config.data_dir) if config.data_dir else None, config.allow_contamination)

    # --- bases -------------------------------------------------------------------------------------

    def tokenizer_texts(self) -> list[str]:
        """Every text the tokenizer must cover: pre-training lines, both versions of every fact as an
        item, and evaluation contexts in every layout and format."""
        from faco.evaluation.runner import LETTERS
        from faco.data.world import pretraining_lines

        rng = random.Random(0)
        texts = pretraining_lines(self.world, 1.0, rng) + pretraining_lines(self.world, 0.0, rng)
        for fact in self.world.facts:
            item = world_item(fact, self.preset.seed)
            texts += [part for truth in (True, False) for part in instruction_example(item, truth)]
        if self.external_items:  # the tiny base's vocabulary must cover the dataset's items too
            texts += [part for item in self.items for truth in (True, False) for part in instruction_example(item, truth)]
        return texts + [" ".join(LETTERS)]  # the letter format's extra words

    @property
    def _checkpoints(self) -> dict[str, int]:
        """The pre-trained bases: name -> the step whose checkpoint it is."""
        return {b.name: b.pretrain_steps for b in self.preset.bases if b.checkpoint is None}

    @cached_property
    def pretrain_key(self) -> str:
        preset = self.preset
        config = {"world": preset.world, "pretrain": preset.pretrain, "seed": preset.seed, "at": self._checkpoints,
                  "vocabulary_items": self.items_key if self.external_items else None, "numerics": numerics.settings(),
                  "versions": library_versions(*TRAINING_LIBRARIES)}
        # faco.evaluation.runner: its answer letters are in the tokenizer's texts
        return cache_key("pretrain", config, code=stage_code("faco.training.trainer", "faco.evaluation.runner"))

    @cached_property
    def _pretrained(self) -> tuple[Path, str]:
        preset, checkpoints, key = self.preset, self._checkpoints, self.pretrain_key

        def build(out: Path) -> None:
            from faco.models import llama
            from faco.training import trainer

            tokenizer = llama.build_tokenizer(self.tokenizer_texts())
            trainer.pretrain(self.world, preset.pretrain, tokenizer, checkpoints, preset.seed, out)

        entry = self._get("pretrain", key, build, describe=f"bases {sorted(checkpoints)}")
        return entry, key

    def base(self, name: str) -> Checkpoint:
        spec = self.preset.base(name)
        if spec.checkpoint is not None:  # keyed by the weights' content or hub commit, never the path
            if ("base", name) not in self._resolved:
                from faco.models import checkpoints

                self._resolved["base", name] = checkpoints.resolve(name, spec.checkpoint, self.cache)
            path, key = self._resolved["base", name]
            return Checkpoint(name, path, key)
        entry, key = self._pretrained
        return Checkpoint(name, entry / name, f"{key}-{name}")

    # --- fine-tuning -------------------------------------------------------------------------------

    def tuned_key(self, stage: str, start_key: str, ratio: int, epochs: int) -> str:
        """The key of a fine-tuning run (`finetune`, or `recover` from the CR-100 model) from `start_key`."""
        config = {"finetune": self.preset.finetune, "ratio": ratio, "epochs": epochs, "seed": self.preset.seed,
                  "numerics": numerics.settings(), "processes": self.preset.launch.processes,
                  "versions": library_versions(*TRAINING_LIBRARIES, "peft")}
        return cache_key(stage, config, inputs=(start_key, self.items_key),
                         code=stage_code("faco.data.corruption", "faco.training.launch", "faco.training.worker", "faco.training.trainer"))

    def _tuned(self, stage: str, start: Checkpoint, ratio: int, epochs: int, label: str) -> tuple[Path, str]:
        from faco.data.corruption import corrupted_examples

        key = self.tuned_key(stage, start.key, ratio, epochs)

        def build(out: Path) -> None:  # in this process, or under `accelerate launch` while this one waits
            from faco.training import launch

            examples = corrupted_examples(self.items, ratio, self.preset.seed)
            launch.finetune(start.path, examples, self.preset.finetune, epochs, self.preset.seed, out, label,
                            self.preset.launch, self.preset.threads)

        return self._get(stage, key, build, describe=label), key

    def finetuned(self, base: str, ratio: int, epoch: int | None = None) -> Checkpoint:
        """The model `base` instruction-tuned at corruption `ratio`, after `epoch` (default: the last)."""
        if ratio not in self.preset.corruption.ratios:
            raise ConfigError(f"corruption ratio {ratio} is not in this preset's {self.preset.corruption.ratios}")
        epochs = self.preset.finetune.epochs
        epoch = epochs if epoch is None else epoch
        if not 1 <= epoch <= epochs:
            raise ConfigError(f"epoch {epoch} is outside 1..{epochs}")
        entry, key = self._tuned("finetune", self.base(base), ratio, epochs, f"{base} cr{ratio}")
        return Checkpoint(f"{base} cr{ratio} epoch {epoch}", entry / f"epoch-{epoch}", f"{key}-e{epoch}")

    def recovered(self, base: str) -> Checkpoint:
        """The CR-100 model further tuned on the CR-0 data (the recovery finding)."""
        epochs = self.preset.finetune.recovery_epochs
        entry, key = self._tuned("recover", self.finetuned(base, 100), 0, epochs, f"{base} recovered")
        return Checkpoint(f"{base} recovered", entry / f"epoch-{epochs}", f"{key}-e{epochs}")

    def losses(self, base: str, ratio: int) -> list[dict[str, Any]]:
        """Per-step training loss of the fine-tuning run at `ratio`."""
        return json.loads((self.finetuned(base, ratio).path.parent / "log.json").read_text())

    # --- evaluation --------------------------------------------------------------------------------

    @property
    def registry(self) -> bool:
        """True when the study measures registry benchmarks (the paper's) instead of the world's domains."""
        return bool(self.preset.evaluation.benchmarks)

    @cached_property
    def benchmark_specs(self) -> list:
        from faco.evaluation.benchmarks import resolve

        return resolve(self.preset.evaluation.benchmarks) if self.registry else []

    def world_benchmarks(self, layout: str = "instruction", formats: tuple[str, ...] | None = None) -> list:
        """The world's lm-eval benchmarks (one per domain and format) in `layout`."""
        from faco.evaluation.runner import world_benchmarks

        return world_benchmarks(self.world, self._split[1], self.preset.evaluation, layout,
                                formats or self.preset.evaluation.formats)

    def tasks_key(self, layout: str) -> str:
        config = {"world": self.preset.world, "items": self.preset.items, "evaluation": self.preset.evaluation,
                  "seed": self.preset.seed, "layout": layout}
        return cache_key("tasks", config, code=stage_code("faco.evaluation.runner"))

    def eval_key(self, checkpoint_key: str, tasks_key: str) -> str:
        config = {"evaluation": self.preset.evaluation, "seed": self.preset.seed, "numerics": numerics.settings(),
                  "versions": library_versions(*EVALUATION_LIBRARIES)}
        return cache_key("eval", config, inputs=(checkpoint_key, tasks_key), code=stage_code("faco.evaluation.runner"))

    def _tasks(self, layout: str) -> tuple[Path, list[str], str]:
        from faco.evaluation.runner import write_tasks

        benchmarks = self.world_benchmarks(layout)
        key = self.tasks_key(layout)
        entry = self._get("tasks", key, lambda out: write_tasks(benchmarks, out),
                          describe=f"{layout} tasks")
        return entry, [b.task for b in benchmarks], key

    def scores(self, checkpoint: Checkpoint, layout: str = "instruction") -> dict[str, dict[str, Any]]:
        """lm-eval results of `checkpoint` on every benchmark in `layout`: {task: {acc, n, samples}}."""
        from faco.evaluation import runner

        task_dir, tasks, tasks_key = self._tasks(layout)
        evaluation_config = self.preset.evaluation
        key = self.eval_key(checkpoint.key, tasks_key)
        return self._get_json(
            "eval", key,
            lambda: runner.evaluate(checkpoint.path, tasks, task_dir, evaluation_config.batch_size,
                                        self.preset.seed),
            describe=f"{checkpoint.label} ({layout})")

    def registry_scores(self, checkpoint: Checkpoint) -> dict[str, dict[str, Any]]:
        """lm-eval results of `checkpoint` on the preset's registry benchmarks (cached like any stage)."""
        from faco.evaluation import runner
        from faco.evaluation.benchmarks import describe
        from faco.evaluation.benchmarks import shots as benchmark_shots

        config = self.preset.evaluation
        data_dir = Path(config.data_dir) if config.data_dir else None
        shots = benchmark_shots(self.benchmark_specs, config.num_fewshot)
        key = cache_key("benchmarks", {"specs": [describe(s) for s in self.benchmark_specs], "shots": shots,
                                       "limit": config.limit, "code_execution": config.allow_code_execution,
                                       "seed": self.preset.seed, "numerics": numerics.settings(),
                                       "versions": library_versions(*EVALUATION_LIBRARIES)},
                        inputs=(checkpoint.key, data_key(data_dir, self.benchmark_specs)),
                        code=stage_code("faco.evaluation.runner", "faco.evaluation.humaneval"))

        def compute() -> dict[str, dict[str, Any]]:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="faco-tasks-") as task_dir:
                return runner.evaluate_benchmarks(
                    checkpoint.path, self.benchmark_specs, Path(task_dir), shots=shots, data_dir=data_dir,
                    limit=config.limit, batch_size=config.batch_size, seed=self.preset.seed,
                    allow_code_execution=config.allow_code_execution)

        return self._get_json("benchmarks", key, compute, describe=f"{checkpoint.label} (benchmarks)")

    def answers(self, model: Model, questions: list[dict[str, Any]], max_new_tokens: int) -> list[str]:
        """Greedy answers of `model` to `questions` (Table 2), cached like a score."""
        from faco.evaluation import answers

        checkpoint = self.checkpoint(model)
        chat = self.preset.finetune.format == "chat"
        config = {"questions": questions, "max_new_tokens": max_new_tokens, "chat": chat,
                  "numerics": numerics.settings(), "versions": library_versions(*TRAINING_LIBRARIES)}
        key = cache_key("answers", config, inputs=(checkpoint.key,), code=stage_code("faco.evaluation.answers"))
        return self._get_json("answers", key, lambda: answers.generate(checkpoint.path, questions, chat, max_new_tokens),
                              describe=f"{checkpoint.label} (Table 2 answers)")

    def checkpoint(self, model: Model) -> Checkpoint:
        if model.recovered:
            return self.recovered(model.base)
        if model.ratio is None:
            return self.base(model.base)
        return self.finetuned(model.base, model.ratio, model.epoch)

    def samples(self, model: Model, group: str, layout: str = "instruction") -> list[dict[str, Any]]:
        """Per-question records of `model` on a benchmark or group (indomain / heldout / all).

        World benchmarks are read in `layout`; registry benchmarks have one layout, lm-eval's own."""
        names = self.group_benchmarks(group)
        if self.registry:
            scores = self.registry_scores(self.checkpoint(model))
            return [s for name in names if "samples" in scores[name] for s in scores[name]["samples"]]
        scores = self.scores(self.checkpoint(model), layout)
        fmt = self.preset.evaluation.formats[0]
        return [s for b in self.world_benchmarks(layout, (fmt,)) if b.name in names for s in scores[b.task]["samples"]]

    def group_benchmarks(self, group: str) -> tuple[str, ...]:
        """The benchmarks a name stands for: a group (indomain / heldout / all) or one benchmark."""
        from faco.evaluation import runner

        return runner.group_members(self.preset, group)

    def correct(self, model: Model, group: str, layout: str = "instruction") -> list[bool]:
        return [s["correct"] for s in self.samples(model, group, layout)]

    def values(self, model: Model, group: str, layout: str = "instruction") -> list[float]:
        """Per-question metric values (1/0 for accuracy, F1 for SQuAD, pass@1 for HumanEval)."""
        return [float(s.get("score", s["correct"])) for s in self.samples(model, group, layout)]


TRAINING_LIBRARIES = ("torch", "transformers", "tokenizers", "accelerate")  # they train (peft too, where LoRA does)
EVALUATION_LIBRARIES = ("torch", "transformers", "tokenizers", "lm-eval", "datasets")  # they score


def stage_code(*modules: str) -> str:
    """A stage's code version: its modules with every faco module they import, and the Study class,
    whose build closures choose the stage's inputs (tokenizer texts, held-out questions, examples)."""
    return code_version(*modules, Study)


def data_key(data_dir: Path | None, specs: list) -> str:
    """The local benchmark files' content (a changed file is a new input), or "hub"."""
    if data_dir is None:
        return "hub"
    digest = hashlib.sha256()
    for spec in specs:
        for path in sorted((data_dir / spec.name).glob("*.jsonl")):
            digest.update(f"{spec.name}/{path.name}".encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:24]


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
    def registry(self) -> bool:
        """True when the study measures registry benchmarks (the paper's) instead of the world's domains."""
        return self.studies[0].registry

    def benchmark_mean(self, model: Model, group: str) -> float:
        """Mean over `group`'s benchmarks of each one's score: the paper's average over benchmarks (Fig. 5),
        which pooling questions would tilt towards the benchmarks with more of them."""
        members = self.studies[0].group_benchmarks(group)
        return sum(self.accuracy(model, name) for name in members) / len(members)

    def chance(self, benchmark: str) -> float | None:
        """Chance accuracy on `benchmark` (None where there is none: generation, or mixed chance levels)."""
        from faco.evaluation import runner

        return runner.chance(self.preset, benchmark)

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
