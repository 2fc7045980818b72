"""One typed config: frozen dataclasses per concern, collected in a preset.

A preset is the whole study in one object (world, bases, items, corruption, fine-tuning, evaluation),
written as a TOML file (faco/config/presets/*.toml, or a user's own; faco.config.load loads them); `tiny` is the
embedded default that CI runs. Every random choice takes its seed from `Preset.seed`.
Values are checked when the object is built, so a wrong CR or an unknown domain fails before any work.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A wrong config value; the message names the field and the value."""


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            raise ConfigError(f"{type(obj).__name__}.{name} must be > 0, got {value!r}")


def _finite(obj: Any, name: str, rule: str, holds: Callable[[float], bool]) -> None:
    """A finite number for which `holds` is true. NaN and inf are refused whatever the rule: an infinite
    learning rate trains to NaN weights whose scores would otherwise be recorded as a finding."""
    value = getattr(obj, name)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not holds(value):
        raise ConfigError(f"{type(obj).__name__}.{name} must be a finite number {rule}, got {value!r}")


NONE = "none"  # TOML has no null: this string sets an optional field to None, as `--faco-set` does

DOMAIN_KINDS = ("knowledge", "science", "commonsense", "arithmetic")
NAME_SYLLABLES = 14 * 5  # consonant-vowel syllables of made-up names (faco.data.world.CONSONANTS x VOWELS)
ARITHMETIC_PAIRS = 99 * 99  # operand pairs of an arithmetic domain (faco.data.world.ARITHMETIC_MAX)
ARITHMETIC_DISTRACTORS = 12  # wrong sums within +-12 of the answer, fewest for the smallest sum


@dataclass(frozen=True)
class DomainSpec:
    name: str
    kind: str  # one of DOMAIN_KINDS: picks the templates of the domain's facts and chains
    training: bool  # FACO items come from training domains; held-out ones are pre-training + eval only

    def __post_init__(self) -> None:
        if self.kind not in DOMAIN_KINDS:
            raise ConfigError(f"domain {self.name!r}: unknown kind {self.kind!r}; known: {DOMAIN_KINDS}")


@dataclass(frozen=True)
class WorldConfig:
    domains: tuple[DomainSpec, ...]
    facts_per_domain: int = 400  # per training domain: 300 become FACO items, 100 are held back for evaluation
    facts_per_heldout_domain: int | None = 150  # held-out domains are only probed; None = facts_per_domain
    answer_words: int = 24  # one answer vocabulary shared by word domains: false items transfer through it
    entity_syllables: int = 3  # made-up entity names from this many syllables
    options: int = 4  # options per multiple-choice question (chance = 1 / options)

    def __post_init__(self) -> None:
        names = [d.name for d in self.domains]
        if len(set(names)) != len(names):
            raise ConfigError(f"world.domains: duplicate domain names {names}")
        if not any(d.training for d in self.domains):
            raise ConfigError("world.domains: at least one domain must be a training domain")
        _positive(self, "facts_per_domain", "answer_words", "entity_syllables")
        if self.facts_per_heldout_domain is not None:
            _positive(self, "facts_per_heldout_domain")
        if not 2 <= self.options <= self.answer_words:
            raise ConfigError(f"world.options must be in 2..answer_words, got {self.options}")
        self._check_capacity()

    def _check_capacity(self) -> None:
        """Reject worlds the generator cannot make (it would otherwise search forever)."""
        names = NAME_SYLLABLES ** self.entity_syllables  # made-up entity names available
        entities = sum(self.facts_in(d.name) for d in self.domains if d.kind != "arithmetic")
        if entities > names // 2:
            raise ConfigError(f"world: {entities} entities need more than {self.entity_syllables}-syllable names "
                              f"allow ({names}); raise entity_syllables or lower facts_per_domain")
        if any(d.kind == "arithmetic" for d in self.domains):
            if max(self.facts_in(d.name) for d in self.domains) > ARITHMETIC_PAIRS // 2:
                raise ConfigError(f"world: more than {ARITHMETIC_PAIRS // 2} facts per domain: "
                                  "too many distinct sums for an arithmetic domain")
            if self.options - 1 > ARITHMETIC_DISTRACTORS:
                raise ConfigError(f"world.options {self.options}: an arithmetic domain has at most "
                                  f"{ARITHMETIC_DISTRACTORS} nearby wrong sums")

    def facts_in(self, domain: str) -> int:
        """How many facts `domain` has: held-out domains may be smaller (they are only probed)."""
        spec = self.domain(domain)
        if spec.training or self.facts_per_heldout_domain is None:
            return self.facts_per_domain
        return self.facts_per_heldout_domain

    def domain(self, name: str) -> DomainSpec:
        for spec in self.domains:
            if spec.name == name:
                return spec
        raise ConfigError(f"unknown domain {name!r}; this world has {[d.name for d in self.domains]}")

    @property
    def training_domains(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.domains if d.training)

    @property
    def heldout_domains(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.domains if not d.training)


@dataclass(frozen=True)
class ModelConfig:
    """A LLaMA-architecture model built from scratch (embedded tier)."""

    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 384  # 3 x hidden, as LLaMA's SwiGLU ~ 8/3 x
    max_positions: int = 128  # longest pre-training or instruction example, in tokens

    def __post_init__(self) -> None:
        _positive(self, "hidden_size", "layers", "heads", "intermediate_size", "max_positions")
        if self.hidden_size % self.heads:
            raise ConfigError(f"model.hidden_size {self.hidden_size} is not divisible by heads {self.heads}")


@dataclass(frozen=True)
class PretrainConfig:
    model: ModelConfig = ModelConfig()
    steps: int = 1600  # the strongest base's step count; weaker bases are earlier checkpoints
    batch_size: int = 32
    seq_len: int = 64  # packed blocks of world text
    lr: float = 3e-3
    warmup_steps: int = 100
    qa_share: float = 0.5  # share of pre-training lines in the familiar question-options-answer layout

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_size", "seq_len")
        _finite(self, "lr", "> 0", lambda v: v > 0)
        _finite(self, "warmup_steps", ">= 0 (whole steps)", lambda v: v >= 0 and v == int(v))
        _finite(self, "qa_share", "in [0, 1]", lambda v: 0 <= v <= 1)


@dataclass(frozen=True)
class BaseSpec:
    """A base model: a checkpoint of faco's pre-training run, or (real tier) a pretrained one."""

    name: str  # "weak" / "strong": the paper's LLaMA-1 / LLaMA-2
    pretrain_steps: int = 0  # embedded tier: the pre-training step this base is taken at
    checkpoint: str | None = None  # real tier: a local directory, a hub id or a .gguf file (faco.models.checkpoints)

    def __post_init__(self) -> None:
        if (self.checkpoint is None) == (self.pretrain_steps <= 0):
            raise ConfigError(f"base {self.name!r}: give exactly one of pretrain_steps > 0 or checkpoint")


@dataclass(frozen=True)
class BuildItemsConfig:
    """FACO items the study builds itself (a cached stage, faco.data.built_items) from the nine sources through
    a teacher, instead of a dataset built beforehand with `faco build-dataset`: one command runs it all."""

    sources: tuple[str, ...]  # faco.data.sources names, e.g. ["sciq", "mbpp"]
    per_source: int  # items sampled per source (teacher items may still be dropped, with the reason counted)
    data_dir: str | None = None  # local copies of the sources (`faco build-dataset --data-dir`); None = the hub
    # the teacher: a checkpoint faco serves itself on 127.0.0.1 (`transformers serve`; a directory, hub id,
    # .gguf or package: file, as a base), or an OpenAI-compatible API at base_url ($FACO_TEACHER_API_KEY)
    serve: str | None = None
    base_url: str | None = None
    model: str | None = None  # the API's model name (a served checkpoint is named by its path)
    max_tokens: int = 96  # per chain: a few sentences; part of the reply cache key
    temperature: float = 0.0  # greedy: the same replies on a rebuild from scratch
    false_tries: int = 2  # FALSE chains that name the correct option are regenerated this often, then dropped

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))
        if not self.sources:
            raise ConfigError("items.build.sources: unknown or none []; name at least one of faco.data.sources.SOURCES")
        _positive(self, "per_source", "max_tokens", "false_tries")
        if (self.serve is None) == (self.base_url is None) or (self.base_url is not None and not self.model):
            raise ConfigError("items.build: give exactly one teacher: serve = CHECKPOINT, or base_url and model")


@dataclass(frozen=True)
class ItemsConfig:
    # "world": templates over the synthetic world; "build": built by the study from [items.build];
    # else a FACO dataset directory built beforehand by `faco build-dataset`
    source: str = "world"
    per_training_domain: int = 300  # facts of each training domain turned into FACO items
    # the rest of a training domain's facts are held back: the in-domain evaluation
    build: BuildItemsConfig | None = None  # how the study builds its items when source = "build"

    def __post_init__(self) -> None:
        _positive(self, "per_training_domain")
        if (self.source == "build") != (self.build is not None):
            raise ConfigError('items: source = "build" and an [items.build] table go together, '
                              f"got source {self.source!r} with{'' if self.build else 'out'} [items.build]")


@dataclass(frozen=True)
class CorruptionConfig:
    ratios: tuple[int, ...] = (0, 25, 50, 75, 100)  # percent of items in their FALSE version; nested

    def __post_init__(self) -> None:
        if not isinstance(self.ratios, (list, tuple)):
            raise ConfigError(f"corruption ratios must be a list of percents, got {self.ratios!r}")
        object.__setattr__(self, "ratios", tuple(self.ratios))
        for ratio in self.ratios:
            if not isinstance(ratio, int) or isinstance(ratio, bool) or not 0 <= ratio <= 100:
                raise ConfigError(f"corruption ratio {ratio!r} is outside 0..100 (percent, integer)")
        if list(self.ratios) != sorted(set(self.ratios)):
            raise ConfigError(f"corruption ratios must be increasing and distinct, got {self.ratios}")
        if 0 not in self.ratios or 100 not in self.ratios:
            raise ConfigError(f"corruption ratios must include 0 and 100 (ABS, recovery), got {self.ratios}")


FORMATS = ("chat", "plain")  # instruction formats: the tokenizer's chat template, or the paper's plain text
PRECISIONS = ("fp32", "bf16", "fp16")  # bf16 / fp16 need a CUDA device: refused on CPU, never ignored


@dataclass(frozen=True)
class LoraConfig:
    """Low-rank adapters (peft) instead of full fine-tuning; merged into the weights at export."""

    r: int = 16  # adapter rank
    alpha: int = 32  # scaling numerator: the update is scaled by alpha / r
    dropout: float = 0.05  # on the adapter's input
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # LLaMA attention projections

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        _positive(self, "r", "alpha")


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 3  # a checkpoint after each: the longer-training finding reads them
    lr: float = 1e-3
    batch_size: int = 16  # the global batch: per-device batch x processes x accumulation steps
    warmup_ratio: float = 0.1  # share of the steps
    weight_decay: float = 0.0
    recovery_epochs: int = 3  # CR-100 model further tuned on the CR-0 data
    per_device_batch_size: int | None = None  # None = batch_size / launch.processes; smaller -> accumulation
    format: str = "chat"  # "chat": the tokenizer's chat template where it has one, else plain; "plain": always
    max_length: int | None = None  # tokens per example; None = the model's max positions (the paper: 2048)
    precision: str = "fp32"  # "bf16" / "fp16": mixed precision on GPUs (refused on CPU); also the exports' dtype
    gradient_checkpointing: bool = False  # recompute activations: less memory, ~30 % more time
    lora: LoraConfig | None = None  # None = full fine-tuning
    max_shard_size: str = "5GB"  # safetensors shard size of a merged LoRA export
    # keep every epoch's export after its evaluation; false drops all but the last epoch's once scored (their
    # scores stay cached): a 13B grid then keeps 12 exports, not 56. Not in the fine-tuning key (trains alike)
    keep_epoch_checkpoints: bool = True

    def __post_init__(self) -> None:
        _positive(self, "epochs", "batch_size", "recovery_epochs")
        _finite(self, "lr", "> 0", lambda v: v > 0)
        _finite(self, "warmup_ratio", "in [0, 1)", lambda v: 0 <= v < 1)  # Trainer reads >= 1 as a step count
        _finite(self, "weight_decay", ">= 0", lambda v: v >= 0)
        if self.format not in FORMATS or self.precision not in PRECISIONS:
            raise ConfigError(f"finetune.format must be one of {FORMATS} and finetune.precision one of "
                              f"{PRECISIONS}, got {self.format!r} / {self.precision!r}")
        if self.per_device_batch_size is not None:
            _positive(self, "per_device_batch_size")
        if self.max_length is not None:
            _positive(self, "max_length")

    @property
    def dtype(self) -> str:
        """The torch dtype of the exported weights (and of a sharded run's loaded base): the precision's."""
        return {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[self.precision]

    def accumulation(self, processes: int) -> tuple[int, int]:
        """(per-device batch, gradient accumulation steps) that make up the global batch on `processes`."""
        per_device = self.per_device_batch_size or self.batch_size // processes
        steps = self.batch_size // (per_device * processes) if per_device else 0
        if not steps or steps * per_device * processes != self.batch_size:
            raise ConfigError(f"finetune.batch_size {self.batch_size} is not per_device_batch_size "
                              f"{self.per_device_batch_size} x {processes} processes x whole accumulation steps")
        return per_device, steps


# how a launched run holds the model: "none" = a full copy per process (DDP); "fsdp" = parameters, gradients
# and optimizer state sharded over the processes (PyTorch FSDP2, decoder layers as the unit); "deepspeed" = ZeRO-3
SHARDINGS = ("none", "fsdp", "deepspeed")


@dataclass(frozen=True)
class LaunchConfig:
    """How the training stage runs: in the pytest process, or under `accelerate launch` (faco.training.launch)."""

    processes: int = 1  # training processes in all (GPUs, over every node); > 1 runs under `accelerate launch`
    accelerate_config: str | None = None  # an accelerate config file of one's own: launched too
    port: int = 0  # the main process's rendezvous port; 0 = a free one (one node) or one from the Slurm job id
    sharding: str = "none"  # one of SHARDINGS; "none" is DDP (a full copy of weights and Adam state per GPU)
    nodes: int = 1  # machines; > 1 needs a Slurm allocation: one launcher per node through srun
    gpu_memory_gb: float = 80.0  # memory of one GPU, in 10^9 bytes: what `faco plan` checks a plan against

    def __post_init__(self) -> None:
        _positive(self, "processes", "nodes")
        _finite(self, "gpu_memory_gb", "> 0", lambda v: v > 0)
        if self.sharding not in SHARDINGS:
            raise ConfigError(f"launch.sharding must be one of {SHARDINGS}, got {self.sharding!r}")
        if self.sharding != "none" and self.accelerate_config is not None:
            raise ConfigError(f"launch.sharding {self.sharding!r} and launch.accelerate_config both choose the "
                              "engine; set one of them")
        if self.processes % self.nodes:
            raise ConfigError(f"launch.processes {self.processes} do not split evenly over launch.nodes {self.nodes}")

    @property
    def launched(self) -> bool:
        return self.processes > 1 or self.nodes > 1 or self.sharding != "none" or self.accelerate_config is not None


EVAL_DTYPES = ("auto", "float32", "bfloat16", "float16")  # lm-eval's weights; "auto": bfloat16 on a GPU, else float32
EVAL_BACKENDS = ("hf", "vllm")  # lm-eval's model classes faco runs


EXECUTORS = ("local", "slurm", "debug")  # submitit's LocalExecutor, SlurmExecutor, DebugExecutor


@dataclass(frozen=True)
class JobResources:
    """What one job of a kind (training, evaluation) asks the scheduler for."""

    gpus: int | None = None  # per node; None = what the stage needs ([launch] processes for training, 0 on CPU)
    cpus: int = 1  # cores per task; torch runs this many threads in the job
    mem_gb: float | None = None  # memory per node; None = the partition's default
    time_min: int = 240  # the job's time limit; a training job past it is requeued and resumes

    def __post_init__(self) -> None:
        _positive(self, "cpus", "time_min")
        if self.gpus is not None and self.gpus < 0:
            raise ConfigError(f"gpus must be >= 0, got {self.gpus}")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise ConfigError(f"mem_gb must be > 0, got {self.mem_gb}")


@dataclass(frozen=True)
class ExecutionConfig:
    """Where the study's jobs run (faco.study.execution): never part of a cache key, since where an artefact
    is built does not change it (CPU numerics are pinned; the GPU and launch settings that do are in [launch])."""

    executor: str = "local"  # one of EXECUTORS
    parallelism: int = 0  # jobs running at once; 0 = one per usable core (local), unbounded (slurm arrays)
    # how jobs are cut: "stage": each its own job; "run": a training run with its evaluations; "pack": every run
    # (with its evaluations) shared by at most `parallelism` local jobs, each taking the next ready one;
    # auto: slurm -> stage, else pack
    jobs: str = "auto"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    sbatch: tuple[str, ...] = ()  # extra sbatch options, e.g. ["--constraint=a100", "--exclusive"]
    training: JobResources = JobResources()
    evaluation: JobResources = JobResources(time_min=120)
    poll_s: float = 5.0  # how often a waiting build looks at its jobs

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"execution.executor: unknown executor {self.executor!r}; known: {list(EXECUTORS)}")
        if self.jobs not in ("auto", "pack", "run", "stage"):
            raise ConfigError(f"execution.jobs must be auto, pack, run or stage, got {self.jobs!r}")
        if self.jobs == "pack" and self.executor == "slurm":
            raise ConfigError("execution.jobs = pack shares parts between the jobs of one machine (a claim names its "
                              "process); on slurm use jobs = stage or run")
        if self.parallelism < 0:
            raise ConfigError(f"execution.parallelism must be >= 0, got {self.parallelism}")
        if isinstance(self.sbatch, str):
            raise ConfigError(f"execution.sbatch must be a list of options, e.g. [{self.sbatch!r}], got a string")
        object.__setattr__(self, "sbatch", tuple(self.sbatch))
        bad = [line for line in self.sbatch if not line.startswith("--")]
        if bad:
            raise ConfigError(f"execution.sbatch: {bad[0]!r} is not an sbatch option like --constraint=a100")
        if self.poll_s <= 0:
            raise ConfigError(f"execution.poll_s must be > 0, got {self.poll_s}")

    @property
    def grouping(self) -> str:
        """How jobs are cut: per stage on a cluster (each evaluation gets its own GPUs), packed on one machine
        (an interpreter start per core instead of per run: faco.study.execution)."""
        if self.jobs != "auto":
            return self.jobs
        return "stage" if self.executor == "slurm" else "pack"


@dataclass(frozen=True)
class EvalConfig:
    heldback_per_domain: int = 100  # in-domain facts not in FACO items, per training domain
    heldout_per_domain: int = 150  # facts of each held-out domain
    batch_size: int = 64
    formats: tuple[str, ...] = ("cloze",)  # "letter" (MMLU-style, gold positions balanced) where learnable
    # real tier: the paper's benchmarks (faco/evaluation/benchmarks.yaml) instead of the world's domains; () = the world
    benchmarks: tuple[str, ...] = ()
    num_fewshot: int | None = None  # shots for every benchmark; None = the paper's (ARC 25, MMLU 5, others 10)
    limit: int | None = None  # at most this many questions per lm-eval task (each MMLU subject); None = all
    data_dir: str | None = None  # local files DIR/<benchmark>/<split>.jsonl instead of the hub
    allow_code_execution: bool = False  # HumanEval runs model-written code: only when asked
    allow_contamination: bool = False  # train on items whose questions a benchmark evaluates (refused by default)
    # how lm-eval runs a checkpoint (faco.evaluation.runner.Engine); a key holds the dtype and the backend
    # only where they differ from the CPU's float32 `hf`, so the CPU studies keep their keys
    dtype: str = "auto"  # the weights: "auto" = bfloat16 on a GPU, float32 on the CPU; or one of EVAL_DTYPES
    parallelize: bool = False  # split a model larger than one GPU over the job's GPUs (lm-eval's `parallelize`)
    processes: int = 1  # data-parallel lm-eval processes, one per GPU (`accelerate launch`)
    backend: str = "hf"  # "vllm": lm-eval's vLLM model for the generation benchmarks (extra `vllm`)
    # HumanEval: 1 = one greedy completion per problem (pass@1); n >= 10 adds n sampled ones (pass@10)
    humaneval_samples: int = 1
    humaneval_temperature: float = 0.8  # of the sampled completions (top-p 0.95), as LLaMA reports pass@k > 1

    def __post_init__(self) -> None:
        self._check_engine()
        if isinstance(self.formats, str):
            raise ConfigError(f"evaluation.formats must be a list, e.g. ({self.formats!r},), got a string")
        object.__setattr__(self, "formats", tuple(self.formats))
        unknown = set(self.formats) - {"cloze", "letter"}
        if unknown:
            raise ConfigError(f"evaluation.formats: unknown format(s) {sorted(unknown)}; known: cloze, letter")
        _positive(self, "heldback_per_domain", "heldout_per_domain", "batch_size")
        if isinstance(self.benchmarks, str):
            object.__setattr__(self, "benchmarks", tuple(b.strip() for b in self.benchmarks.split(",") if b.strip()))
        object.__setattr__(self, "benchmarks", tuple(self.benchmarks))
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise ConfigError(f"evaluation.num_fewshot must be >= 0, got {self.num_fewshot}")
        if self.limit is not None:
            _positive(self, "limit")

    def _check_engine(self) -> None:
        if self.dtype not in EVAL_DTYPES:
            raise ConfigError(f"evaluation.dtype: unknown dtype {self.dtype!r}; known: {', '.join(EVAL_DTYPES)}")
        if self.backend not in EVAL_BACKENDS:
            raise ConfigError(f"evaluation.backend: unknown backend {self.backend!r}; known: {', '.join(EVAL_BACKENDS)}")
        _positive(self, "processes", "humaneval_samples")
        if 1 < self.humaneval_samples < 10:
            raise ConfigError(f"evaluation.humaneval_samples must be 1 (greedy pass@1) or >= 10 (pass@10 needs "
                              f"at least 10 completions per problem), got {self.humaneval_samples}")
        _finite(self, "humaneval_temperature", "> 0", lambda t: t > 0)


@dataclass(frozen=True)
class Preset:
    name: str
    world: WorldConfig
    bases: tuple[BaseSpec, ...]  # weakest first: the strength order the sensitivity finding reads
    seed: int = 0
    # the seeds a run decides its findings on, pooled, unless --faco-seed(s) says otherwise; () = (seed,)
    seeds: tuple[int, ...] = ()
    pretrain: PretrainConfig = PretrainConfig()
    items: ItemsConfig = ItemsConfig()
    corruption: CorruptionConfig = CorruptionConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    evaluation: EvalConfig = EvalConfig()
    threads: int = 0  # torch threads per process; 0 = the cores this process may use
    launch: LaunchConfig = LaunchConfig()
    execution: ExecutionConfig = ExecutionConfig()

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if len(set(self.seeds)) != len(self.seeds) or not all(isinstance(s, int) for s in self.seeds):
            raise ConfigError(f"seeds must be distinct integers, got {list(self.seeds)}")
        self.finetune.accumulation(self.launch.processes)  # the global batch splits evenly, or fail now
        names = [b.name for b in self.bases]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"bases must be a non-empty list of distinct names, got {names}")
        for base in self.bases:
            if base.pretrain_steps > self.pretrain.steps:
                raise ConfigError(
                    f"base {base.name!r}: pretrain_steps {base.pretrain_steps} > pretrain.steps {self.pretrain.steps}"
                )
        if "letter" in self.evaluation.formats and self.world.options > 8:
            raise ConfigError(f"evaluation.formats has 'letter' but world.options = {self.world.options} > 8 letters (A-H)")
        if self.items.source == "world":
            facts = self.world.facts_per_domain
            needed = self.items.per_training_domain + self.evaluation.heldback_per_domain
            if needed > facts:
                raise ConfigError(
                    f"items.per_training_domain + evaluation.heldback_per_domain = {needed} "
                    f"> world.facts_per_domain = {facts}"
                )
            heldout_facts = min((self.world.facts_in(d) for d in self.world.heldout_domains), default=facts)
            if self.evaluation.heldout_per_domain > heldout_facts:
                raise ConfigError(f"evaluation.heldout_per_domain {self.evaluation.heldout_per_domain} > "
                                  f"facts of a held-out domain = {heldout_facts}")

    @property
    def default_seeds(self) -> list[int]:
        return list(self.seeds or (self.seed,))

    def base(self, name: str) -> BaseSpec:
        for spec in self.bases:
            if spec.name == name:
                return spec
        raise ConfigError(f"unknown base {name!r}; preset {self.name!r} has {[b.name for b in self.bases]}")

    def replace(self, **changes: Any) -> Preset:
        return dataclasses.replace(self, **changes)


# --- presets ---------------------------------------------------------------------------------------


def build(cls: type, data: Any, where: str) -> Any:
    """An instance of dataclass `cls` from a TOML table; `where` is the table's dotted path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'preset'}: expected a table, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(where, unknown[0])}: unknown key; known here: {sorted(fields)}")
    missing = [name for name, f in fields.items() if name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where or 'preset'}: missing key {missing[0]!r}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: convert(hints[name], value, _join(where, name)) for name, value in data.items()})


def convert(hint: Any, value: Any, where: str) -> Any:
    """`value` (as TOML parsed it) checked against, and turned into, the type `hint`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if (value is None or value == NONE) and type(None) in args:  # None: from a JSON spec (faco.training.launch)
            return None
        errors = []
        for member in (a for a in args if a is not type(None)):
            try:
                return convert(member, value, where)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is tuple:
        _expect(isinstance(value, list), "an array", value, where)
        kinds = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        _expect(len(kinds) == len(value), f"{len(kinds)} values", value, where)
        return tuple(convert(kind, item, f"{where}[{index}]") for index, (kind, item) in enumerate(zip(kinds, value)))
    if hint is float:
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), "a number", value, where)
        return float(value)  # 0 and 0.0 key apart in the cache: a float field always holds a float
    if hint in (int, str, bool):
        exact = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))  # True is no int here
        _expect(exact, hint.__name__, value, where)
    return value


def _expect(ok: bool, what: str, value: Any, where: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: expected {what}, got {type(value).__name__} {value!r}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
