"""The study as a table of stages: every artefact a run builds, in one place.

Each `Stage` says what it is called, which parameters name one of its artefacts, which stages it reads
(`inputs`), which slice of the preset decides it (`config`), which code computes it (`code`: faco
modules, counted with every faco module they import), how it is built (`build`) and what kind of thing
it leaves (`output`). Its cache key is made of exactly those: the config slice, the inputs' keys (and,
for content-keyed stages, a digest of the content) and the code's version, so an edit of the HumanEval
scorer changes the keys of the evaluations that run HumanEval and nothing else, and an edit of the report
changes no key at all.

`faco.study.study.Study` resolves a model or a score by walking this table; anything can ask for one
stage by name with its parameters (`Request.of("finetune", base="strong", ratio=50)`), which is what
`faco status` lists and what a job of a cluster builds.

    stage      params               inputs                      output
    dataset    -                    (teacher, source files)     items built by a teacher ([items] source = "build")
    items      -                    -                           the world's FACO items in training order
    external   -                    dataset, or a dataset dir   a FACO dataset's items (view, keyed by content)
    pretrain   -                    external items (if any)     the embedded tier's pre-trained bases
    base       base                 pretrain, or a checkpoint   a base model (view: no entry of its own)
    finetune   base, ratio          base, items                 one instruction-tuning run, every epoch
    recover    base                 checkpoint, items           the CR-100 model tuned further on CR-0 data
    falsity    base, ratio, kind    base, items                 a run whose FALSE items falsify the answer or the chain
    redose     base, share          checkpoint, items           the CR-100 model tuned on a share of the CR-0 data
    trajectory base, ratio, every   base, items                 a finetune run again, a checkpoint every `every` steps
    checkpoint model                base / finetune / recover   one model's directory (view)
    tasks      layout               -                           the world's lm-eval task files
    eval       model, layout        checkpoint, tasks           lm-eval results on the world's tasks
    benchmarks model                checkpoint, benchmark data  lm-eval results on the registry's benchmarks
    answers    model, questions,..  checkpoint                  greedy answers (Table 2)
    hidden     model                checkpoint, tasks           hidden states per layer, picks, logit lens
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faco.config.schema import ConfigError, FinetuneConfig
from faco.core import numerics
from faco.core.cache import CacheError, cache_key, library_versions
from faco.data import built_items
from faco.data.corruption import corrupted_examples
from faco.data.dataset import load_dataset_items
from faco.data.falsity import clean_share, kind_examples
from faco.data.items import read_jsonl, write_jsonl
from faco.data.world_items import tokenizer_texts
from faco.evaluation import benchmark_runs, generation, hidden, runner
from faco.evaluation.benchmarks import describe, shots
from faco.evaluation.world_tasks import LAYOUTS, write_tasks
from faco.models import checkpoints, llama
from faco.training import launch, pretrain, sharding

Study = Any  # faco.study.study.Study, which walks this table (it imports this module, not the other way)
TRAINING_LIBRARIES = ("torch", "transformers", "tokenizers", "accelerate")  # they train (peft too, where LoRA does)
EVALUATION_LIBRARIES = ("torch", "transformers", "tokenizers", "lm-eval", "datasets")  # they score
OUTPUTS = ("directory", "parsed", "json", "view")  # a view is part of another entry, or lies outside the cache


@dataclass(frozen=True)
class Request:
    """One artefact: a stage and the parameters that name it (e.g. finetune, base=strong, ratio=50)."""

    stage: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, stage: str, **params: Any) -> Request:
        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}; known: {list(STAGES)}")
        wanted = set(STAGES[stage].params)
        if set(params) != wanted:
            raise ConfigError(f"stage {stage!r} takes parameters {sorted(wanted)}, got {sorted(params)}")
        return cls(stage, params)

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    def __str__(self) -> str:
        shown = {k: v for k, v in self.params.items() if k != "questions"}
        return self.stage + "".join(f" {k}={_label(v)}" for k, v in shown.items())


def _label(value: Any) -> str:
    return value.label() if hasattr(value, "label") else str(value)


@dataclass(frozen=True)
class Stage:
    name: str
    params: tuple[str, ...]
    output: str  # one of OUTPUTS
    inputs: Callable[[Study, Request], list[Request]]
    config: Callable[[Study, Request], dict[str, Any]]
    code: Callable[[Study, Request], tuple[str, ...]]  # faco modules that compute it
    build: Callable[..., Any]  # (study, request, out) for entries; (study, request) -> value for json / views
    describe: Callable[[Study, Request], str]
    content: Callable[[Study, Request], tuple[str, ...]] = lambda study, request: ()  # digests of inputs that are no stage
    parse: Callable[[Path], Any] | None = None  # a parsed entry: what the study reads from it (checked first)
    view_key: Callable[[Study, Request], str] | None = None  # a view's key (from its input's, or content)

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"stage {self.name}: output {self.output!r} is not one of {OUTPUTS}")


def _none(study: Study, request: Request) -> list[Request]:
    return []


def _fixed(*modules: str) -> Callable[[Study, Request], tuple[str, ...]]:
    return lambda study, request: modules


# --- items -----------------------------------------------------------------------------------------

def _dataset_config(study: Study, request: Request) -> dict[str, Any]:
    spec = study.preset.items.build
    settings = {name: value for name, value in vars(spec).items() if name not in ("data_dir", "serve")}
    return {"build": settings, "seed": study.preset.seed}


def _dataset_content(study: Study, request: Request) -> tuple[str, ...]:
    """The teacher (its weights' key, or the API and model) and the source files' content; never a path."""
    spec = study.preset.items.build
    teacher = (checkpoints.identify("teacher", spec.serve, study.cache) if spec.serve
               else f"{spec.base_url}|{spec.model}")
    return teacher, built_items.sources_digest(spec)


def _build_dataset(study: Study, request: Request, out: Path) -> None:
    spec = study.preset.items.build
    teacher = checkpoints.resolve("teacher", spec.serve, study.cache) if spec.serve else None
    built_items.build(spec, study.preset.seed, out / "dataset", study.cache, teacher)


def _items_config(study: Study, request: Request) -> dict[str, Any]:
    preset = study.preset
    return {"world": preset.world, "items": preset.items, "seed": preset.seed}


def _external_inputs(study: Study, request: Request) -> list[Request]:
    return [Request.of("dataset")] if study.preset.items.source == "build" else []


def _external_key(study: Study, request: Request) -> str:
    """A dataset's items by their content: a rebuilt dataset is a new input, wherever it lies."""
    content = hashlib.sha256("".join(json.dumps(i.to_dict(), sort_keys=True) for i in study.external()).encode())
    return cache_key("items", {"source": "dataset", "seed": study.preset.seed}, inputs=(content.hexdigest(),))


# --- bases and training ----------------------------------------------------------------------------

def _pretrain_inputs(study: Study, request: Request) -> list[Request]:
    return [study.items_request] if study.external_items else []  # the tokenizer covers a dataset's items


def _pretrain_config(study: Study, request: Request) -> dict[str, Any]:
    preset = study.preset
    return {"world": preset.world, "pretrain": preset.pretrain, "seed": preset.seed, "at": study.pretrained_bases,
            "numerics": numerics.settings(), "versions": library_versions(*TRAINING_LIBRARIES)}


def _build_pretrain(study: Study, request: Request, out: Path) -> None:
    preset = study.preset
    tokenizer = llama.build_tokenizer(tokenizer_texts(study.world, preset.seed,
                                                      study.items if study.external_items else ()))
    pretrain.pretrain(study.world, preset.pretrain, tokenizer, study.pretrained_bases, preset.seed, out)


def _base_inputs(study: Study, request: Request) -> list[Request]:
    return [] if study.preset.base(request["base"]).checkpoint else [Request.of("pretrain")]


def _base_key(study: Study, request: Request) -> str:
    """A real base by its weights' content or hub commit, never its path; a pre-trained one by its run."""
    spec = study.preset.base(request["base"])
    if spec.checkpoint is not None:
        return checkpoints.identify(f"base {spec.name!r}", spec.checkpoint, study.cache)
    return f"{study.key(Request.of('pretrain'))}-{spec.name}"


def _base_path(study: Study, request: Request) -> Path:
    spec = study.preset.base(request["base"])
    if spec.checkpoint is not None:
        return checkpoints.resolve(f"base {spec.name!r}", spec.checkpoint, study.cache)[0]
    return study.get(Request.of("pretrain")) / spec.name


def _tuned_inputs(study: Study, request: Request) -> list[Request]:
    if request.stage in ("recover", "redose"):
        start = Request.of("checkpoint", model=study.model(request["base"], 100))
    else:
        start = Request.of("base", base=request["base"])
    return [start, study.items_request]


def _tuned_config(study: Study, request: Request) -> dict[str, Any]:
    """The run's settings; a sharded run's engine too (FSDP's weights are not DDP's bit for bit), present
    only when sharded, so the keys of every run in a process or under DDP stay what they were."""
    preset = study.preset
    ratio, epochs = study.tuned_run(request)
    config = {"finetune": _trains_alike(preset.finetune), "ratio": ratio, "epochs": epochs, "seed": preset.seed,
              "numerics": numerics.settings(), "processes": preset.launch.processes,
              "versions": library_versions(*TRAINING_LIBRARIES, "peft")}
    if preset.launch.sharding != "none":
        config["sharding"] = sharding.settings(preset.launch.sharding)
    return config


def _trains_alike(config: FinetuneConfig) -> dict[str, Any]:
    """The fine-tuning config as its key sees it: which epochs' exports stay after scoring trains nothing
    differently, so keeping or dropping them hits the same entry (the rest keys as the dataclass would)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "keep_epoch_checkpoints"}


def _build_tuned(study: Study, request: Request, out: Path) -> None:
    """In this process, or under `accelerate launch` while this one waits (faco.training.launch)."""
    ratio, _ = study.tuned_run(request)
    _launch(study, request, corrupted_examples(study.items, ratio, study.preset.seed), out)


def _launch(study: Study, request: Request, examples: list, out: Path, save_every: int | None = None) -> None:
    preset = study.preset
    _, epochs = study.tuned_run(request)
    start = study.get(_tuned_inputs(study, request)[0])
    launch.finetune(start, examples, preset.finetune, epochs, preset.seed, out, study.describe(request),
                    preset.launch, preset.threads, save_every)


TUNING_CODE = _fixed("faco.data.corruption", "faco.training.launch", "faco.training.worker", "faco.training.trainer",
                     "faco.training.sharding")


# --- beyond the paper (docs/beyond.md): corruption kinds, recovery doses ------------------------------
# Their own stages, so the paper's runs keep their keys: the `both` kind is the finetune stage itself and
# a 100 % dose the recover stage (faco.study.study.Study.run_of maps them there).

def _falsity_config(study: Study, request: Request) -> dict[str, Any]:
    return {**_tuned_config(study, request), "kind": request["kind"]}


def _build_falsity(study: Study, request: Request, out: Path) -> None:
    examples = kind_examples(study.items, request["ratio"], study.preset.seed, request["kind"])
    _launch(study, request, examples, out)


def _redose_config(study: Study, request: Request) -> dict[str, Any]:
    return {**_tuned_config(study, request), "share": request["share"]}


def _build_redose(study: Study, request: Request, out: Path) -> None:
    examples = corrupted_examples(clean_share(study.items, request["share"]), 0, study.preset.seed)
    _launch(study, request, examples, out)


def _trajectory_config(study: Study, request: Request) -> dict[str, Any]:
    return {**_tuned_config(study, request), "every": request["every"]}


def _build_trajectory(study: Study, request: Request, out: Path) -> None:
    """The finetune run at this CR once more (same items, order and seed: the same weights at its end), with a
    checkpoint every `every` steps; a stage of its own, so the paper's runs keep their keys and disk."""
    _launch(study, request, corrupted_examples(study.items, request["ratio"], study.preset.seed), out,
            request["every"])


BEYOND_TUNING_CODE = _fixed("faco.data.falsity", "faco.training.launch", "faco.training.worker", "faco.training.trainer")


def _checkpoint_inputs(study: Study, request: Request) -> list[Request]:
    return [study.run_of(request["model"])]


def _checkpoint_key(study: Study, request: Request) -> str:
    model, run = request["model"], study.run_of(request["model"])
    suffix = {"base": "", "trajectory": f"-s{model.step}"}.get(run.stage, f"-e{study.epoch_of(model)}")
    return study.key(run) + suffix


def _checkpoint_path(study: Study, request: Request) -> Path:
    model, run = request["model"], study.run_of(request["model"])
    entry = study.get(run)
    if run.stage == "base":
        return entry
    if run.stage == "trajectory":
        path = entry / f"step-{model.step}"
        if not path.is_dir():
            raise ConfigError(f"{model.label()}: the run saved no checkpoint at step {model.step}; its checkpoints: "
                              f"{sorted(p.name for p in entry.glob('step-*'))}")
        return path
    path = entry / f"epoch-{study.epoch_of(model)}"
    if not path.is_dir() and any(name.startswith(f"{path.name}/") for name in study.cache.evicted(run.stage, study.key(run))):
        raise CacheError(f"{study.describe(request)}: its checkpoint {path} was dropped once scored "
                         "(finetune.keep_epoch_checkpoints = false; its scores stay cached). Scoring it anew needs "
                         f"the run again: remove {entry} to retrain it, with --faco-set "
                         "finetune.keep_epoch_checkpoints=true to keep every epoch this time")
    return path


# --- evaluation ------------------------------------------------------------------------------------

def _tasks_config(study: Study, request: Request) -> dict[str, Any]:
    preset = study.preset
    return {"world": preset.world, "items": preset.items, "evaluation": _what_is_scored(preset.evaluation),
            "seed": preset.seed, "layout": request["layout"]}


def _build_tasks(study: Study, request: Request, out: Path) -> None:
    write_tasks(study.domain_tasks(request["layout"]), out)


def _scored_config(study: Study, request: Request) -> dict[str, Any]:
    config = study.preset.evaluation
    return {"evaluation": _what_is_scored(config), "seed": study.preset.seed, "numerics": numerics.settings(),
            "versions": library_versions(*EVALUATION_LIBRARIES), **_engine_key(config.dtype)}


HOW_IT_RUNS = ("dtype", "parallelize", "processes", "backend", "humaneval_samples", "humaneval_temperature")


def _what_is_scored(config: Any) -> dict[str, Any]:
    """EvalConfig without how lm-eval runs (HOW_IT_RUNS): those fields enter a key through `_engine_key`
    and `_humaneval_options`, only where they change a number, so the CPU studies keep their keys."""
    return {name: value for name, value in vars(config).items() if name not in HOW_IT_RUNS}


def _engine_key(dtype: str, backend: str = "hf") -> dict[str, Any]:
    """The run's dtype and backend where they differ from the CPU's float32 `hf`: a bf16 or vLLM score is
    an entry of its own. The split over processes or GPUs changes no score and is left out."""
    engine = {"dtype": runner.resolve_dtype(dtype)} if runner.resolve_dtype(dtype) != "float32" else {}
    engine.update({"backend": backend} if backend != "hf" else {})
    return {"engine": engine} if engine else {}


def _humaneval_options(study: Study) -> dict[str, dict[str, Any]]:
    """HumanEval's sampled completions (pass@10), where the preset asks for them; {} = greedy pass@1 only."""
    config = study.preset.evaluation
    if config.humaneval_samples == 1 or "humaneval" not in {s.name for s in study.benchmark_specs}:
        return {}
    return {"humaneval": {"samples": config.humaneval_samples, "temperature": config.humaneval_temperature}}


def _evaluate(study: Study, request: Request) -> dict[str, Any]:
    layout = request["layout"]
    tasks = [b.task for b in study.domain_tasks(layout)]
    return runner.evaluate(study.get(Request.of("checkpoint", model=request["model"])), tasks,
                           study.get(Request.of("tasks", layout=layout)), study.preset.evaluation.batch_size,
                           study.preset.seed, runner.Engine.of(study.preset.evaluation))


def _benchmarks_config(study: Study, request: Request) -> dict[str, Any]:
    config = study.preset.evaluation
    return {"specs": [describe(s) for s in study.benchmark_specs], "shots": _shots(study), "limit": config.limit,
            "code_execution": config.allow_code_execution, "seed": study.preset.seed,
            "numerics": numerics.settings(), "versions": library_versions(*EVALUATION_LIBRARIES),
            **_engine_key(config.dtype, config.backend),
            **({"task_options": _humaneval_options(study)} if _humaneval_options(study) else {})}


def _shots(study: Study) -> dict[str, int]:
    return shots(study.benchmark_specs, study.preset.evaluation.num_fewshot)


def _benchmarks_code(study: Study, request: Request) -> tuple[str, ...]:
    """The runner, and faco's own task config of a benchmark that has one (HumanEval's scorer) only where
    this evaluation runs that benchmark."""
    own = sorted({s.config.partition(":")[0] for s in study.benchmark_specs if s.config})
    return ("faco.evaluation.benchmark_runs", *own)


def _benchmarks_content(study: Study, request: Request) -> tuple[str, ...]:
    """The local benchmark files' content (a changed file is a new input), or "hub"."""
    data_dir = study.preset.evaluation.data_dir
    if data_dir is None:
        return ("hub",)
    digest = hashlib.sha256()
    for spec in study.benchmark_specs:
        for path in sorted((Path(data_dir) / spec.name).glob("*.jsonl")):
            digest.update(f"{spec.name}/{path.name}".encode() + b"\0" + path.read_bytes())
    return (digest.hexdigest()[:24],)


def _score_benchmarks(study: Study, request: Request) -> dict[str, Any]:
    config = study.preset.evaluation
    with tempfile.TemporaryDirectory(prefix="faco-tasks-") as task_dir:
        return benchmark_runs.evaluate_benchmarks(
            study.get(Request.of("checkpoint", model=request["model"])), study.benchmark_specs, Path(task_dir),
            shots=_shots(study), data_dir=Path(config.data_dir) if config.data_dir else None, limit=config.limit,
            batch_size=config.batch_size, seed=study.preset.seed, allow_code_execution=config.allow_code_execution,
            engine=runner.Engine.of(config), task_options=_humaneval_options(study))


def _answers_config(study: Study, request: Request) -> dict[str, Any]:
    return {"questions": request["questions"], "max_new_tokens": request["max_new_tokens"],
            "chat": study.preset.finetune.format == "chat", "numerics": numerics.settings(),
            "versions": library_versions(*TRAINING_LIBRARIES), **_engine_key(study.preset.evaluation.dtype)}


def _answer(study: Study, request: Request) -> list[str]:
    return generation.generate(study.get(Request.of("checkpoint", model=request["model"])), request["questions"],
                               study.preset.finetune.format == "chat", request["max_new_tokens"],
                               runner.resolve_dtype(study.preset.evaluation.dtype))


def _hidden_inputs(study: Study, request: Request) -> list[Request]:
    """The checkpoint, and the instruction tasks: their key covers the questions (world, config and code)."""
    return [*_on_checkpoint(study, request), Request.of("tasks", layout="instruction")]


def _hidden_config(study: Study, request: Request) -> dict[str, Any]:
    return {"numerics": numerics.settings(), "versions": library_versions(*TRAINING_LIBRARIES)}


def _hidden(study: Study, request: Request, out: Path) -> None:
    """Every world question (each domain's, in the instruction layout, cloze) through the model."""
    questions = [q for task in study.domain_tasks("instruction", ("cloze",)) for q in task.questions]
    hidden.hidden_states(study.get(Request.of("checkpoint", model=request["model"])), questions,
                         LAYOUTS["instruction"], out)


def _on_checkpoint(study: Study, request: Request) -> list[Request]:
    return [Request.of("checkpoint", model=request["model"])]


def _model_label(suffix: str) -> Callable[[Study, Request], str]:
    return lambda study, request: f"{study.describe(Request.of('checkpoint', model=request['model']))}{suffix}"


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("dataset", (), "parsed", _none, _dataset_config, _fixed("faco.data.built_items"), _build_dataset,
          lambda study, request: f"FACO items from {', '.join(study.preset.items.build.sources)}",
          content=_dataset_content, parse=lambda entry: load_dataset_items(entry / "dataset")),
    Stage("items", (), "parsed", _none, _items_config, _fixed("faco.data.world_items"),
          lambda study, request, out: write_jsonl(study.world_split[0], out / "items.jsonl"),
          lambda study, request: f"{len(study.world_split[0])} world items",
          parse=lambda entry: read_jsonl(entry / "items.jsonl")),
    Stage("external", (), "view", _external_inputs, lambda study, request: {}, _fixed(),
          lambda study, request: study.external(), lambda study, request: "the items of a FACO dataset",
          view_key=_external_key),
    Stage("pretrain", (), "directory", _pretrain_inputs, _pretrain_config, _fixed("faco.training.pretrain", "faco.data.world_items"),
          _build_pretrain, lambda study, request: f"bases {sorted(study.pretrained_bases)}"),
    Stage("base", ("base",), "view", _base_inputs, lambda study, request: {}, _fixed(), _base_path,
          lambda study, request: request["base"], view_key=_base_key),
    Stage("finetune", ("base", "ratio"), "directory", _tuned_inputs, _tuned_config, TUNING_CODE, _build_tuned,
          lambda study, request: f"{request['base']} cr{request['ratio']}"),
    Stage("recover", ("base",), "directory", _tuned_inputs, _tuned_config, TUNING_CODE, _build_tuned,
          lambda study, request: f"{request['base']} recovered"),
    Stage("checkpoint", ("model",), "view", _checkpoint_inputs, lambda study, request: {}, _fixed(),
          _checkpoint_path, lambda study, request: request["model"].label(study.preset.finetune.epochs),
          view_key=_checkpoint_key),
    Stage("tasks", ("layout",), "directory", _none, _tasks_config, _fixed("faco.evaluation.world_tasks", "faco.data.world_items"),
          _build_tasks, lambda study, request: f"{request['layout']} tasks"),
    Stage("eval", ("model", "layout"), "json",
          lambda study, request: [*_on_checkpoint(study, request), Request.of("tasks", layout=request["layout"])],
          _scored_config, _fixed("faco.evaluation.runner"), _evaluate,
          lambda study, request: f"{_model_label('')(study, request)} ({request['layout']})"),
    Stage("benchmarks", ("model",), "json", _on_checkpoint, _benchmarks_config, _benchmarks_code, _score_benchmarks,
          _model_label(" (benchmarks)"), content=_benchmarks_content),
    Stage("answers", ("model", "questions", "max_new_tokens"), "json", _on_checkpoint, _answers_config,
          _fixed("faco.evaluation.generation"), _answer, _model_label(" (Table 2 answers)")),
    Stage("falsity", ("base", "ratio", "kind"), "directory", _tuned_inputs, _falsity_config, BEYOND_TUNING_CODE,
          _build_falsity, lambda study, request: f"{request['base']} cr{request['ratio']} {request['kind']} false"),
    Stage("redose", ("base", "share"), "directory", _tuned_inputs, _redose_config, BEYOND_TUNING_CODE, _build_redose,
          lambda study, request: f"{request['base']} recovered on {request['share']} %"),
    Stage("trajectory", ("base", "ratio", "every"), "directory", _tuned_inputs, _trajectory_config, TUNING_CODE,
          _build_trajectory,
          lambda study, request: f"{request['base']} cr{request['ratio']} (a checkpoint every {request['every']} steps)"),
    Stage("hidden", ("model",), "parsed", _hidden_inputs, _hidden_config, _fixed("faco.evaluation.hidden"), _hidden,
          _model_label(" (hidden states)"), parse=hidden.read),
)}

