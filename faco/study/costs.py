"""What a preset's grid costs before it runs (`faco plan`): the runs and evaluations, the memory per GPU under
the chosen sharding, the disk, and the GPU-hours, each from stated formulas and assumptions.

A plan that cannot fit one GPU's memory is refused before any work: a 13B model with Adam under plain DDP
needs about 16 bytes per parameter on every GPU (208 GB) where an A100 has 80. The numbers are estimates
for sizing a cluster request, never measurements:

- parameters from the base's config: the embedded tier's ModelConfig and world vocabulary, a local
  directory's or the hub cache's config.json, else a small table of known architectures (offline);
- memory (10^9 bytes): weights and gradients in the training dtype, Adam's two fp32 moments plus an fp32
  master copy under mixed precision; FSDP and ZeRO-3 shard all three over the GPUs; activations of one
  per-device batch at max_length with PyTorch's SDPA attention (no s x s scores kept) and, with gradient
  checkpointing, only each layer's input plus one layer recomputed;
- disk: exports in the preset's dtype, the one resumable Trainer checkpoint (weights + optimizer state),
  ~300 bytes of stored record per evaluated question;
- GPU-hours: 6 N FLOPs per training token (8 N with gradient checkpointing: one more forward), 2 N per
  evaluated token (lm-eval scores each option's request with its whole few-shot context), at an assumed
  MFU against the GPU's dense peak.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faco.config.schema import ConfigError, LoraConfig, Preset
from faco.data.dataset import load_dataset_items
from faco.data.world import build_world
from faco.data.world_items import tokenizer_texts
from faco.evaluation.benchmarks import resolve, shots
from faco.models import checkpoints, llama
from faco.study.reads import Read, run_label

GB = 1e9
MFU = {"train": 0.4, "eval": 0.3}  # assumed model-FLOPs utilisation: HF Trainer + FSDP; lm-eval's hf model
PEAK_TFLOPS = {"a100": {"half": 312.0, "fp32": 19.5}, "h100": {"half": 989.0, "fp32": 67.0}}  # dense, per GPU
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
ADAM_BYTES = 8  # two fp32 moments per trained parameter
MASTER_BYTES = 4  # the fp32 master copy mixed precision updates
PROMPT_TOKENS = 200  # a built FACO item's instruction, question and options before the teacher's chain
WORLD_QUESTION_TOKENS = 24  # a world question with one option, in word tokens
RECORD_BYTES = 300  # one evaluated question's stored record (score, gold, prediction, log-likelihoods)
FSDP_GATHERED_LAYERS = 2  # FSDP gathers one decoder layer's full weights and prefetches the next


@dataclass(frozen=True)
class Architecture:
    """A LLaMA-family decoder's sizes: all `faco plan` needs to count parameters and activations."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tied: bool  # the output layer shares the embedding's weights
    max_positions: int

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    @property
    def layer_parameters(self) -> int:
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_dim  # q, o; k, v
        return attention + 3 * self.hidden * self.intermediate + 2 * self.hidden  # SwiGLU; two RMS norms

    @property
    def parameters(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.layers * self.layer_parameters + self.hidden

    def lora_parameters(self, lora: LoraConfig) -> int:
        """Adapters' parameters: r x (in + out) per targeted projection per layer."""
        shapes = {"q_proj": (self.hidden, self.hidden), "o_proj": (self.hidden, self.hidden),
                  "k_proj": (self.hidden, self.kv_dim), "v_proj": (self.hidden, self.kv_dim),
                  "gate_proj": (self.hidden, self.intermediate), "up_proj": (self.hidden, self.intermediate),
                  "down_proj": (self.intermediate, self.hidden)}
        unknown = sorted(set(lora.target_modules) - set(shapes))
        if unknown:
            raise ConfigError(f"finetune.lora.target_modules {unknown}: not a LLaMA projection; known: {sorted(shapes)}")
        return self.layers * sum(lora.r * sum(shapes[name]) for name in lora.target_modules)


LLAMA_13B = Architecture(5120, 40, 13824, 32000, 40, 40, False, 2048)
LLAMA_7B = Architecture(4096, 32, 11008, 32000, 32, 32, False, 2048)
# known architectures by a fragment of the checkpoint's name (lower case): the hub ids and GGUF files
# the presets name, sized without network
KNOWN: dict[str, Architecture] = {
    "llama-2-13b": Architecture(5120, 40, 13824, 32000, 40, 40, False, 4096),
    "llama-13b": LLAMA_13B,
    "llama-2-7b": Architecture(4096, 32, 11008, 32000, 32, 32, False, 4096),
    "llama-7b": LLAMA_7B,
    "smollm2-135m": Architecture(576, 30, 1536, 49152, 9, 3, True, 8192),
}

# approximate sizes of the paper's benchmarks as lm-eval 0.4 runs them:
# (lm-eval tasks, questions, requests per question, tokens per example with its answer, tokens generated)
BENCHMARK_SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "arc_challenge": (1, 1172, 4, 60, 0),
    "arc_easy": (1, 2376, 4, 50, 0),
    "mmlu": (57, 14042, 1, 100, 0),  # the options " A".." D" are one token: lm-eval scores the context once
    "lambada": (1, 5153, 1, 80, 0),
    "hellaswag": (1, 10042, 4, 100, 0),
    "piqa": (1, 1838, 2, 50, 0),
    "copa": (1, 100, 2, 20, 0),
    "openbookqa": (1, 500, 4, 30, 0),
    "winogrande": (1, 1267, 2, 30, 0),
    "squad": (1, 1148, 1, 200, 32),
    "boolq": (1, 3270, 2, 150, 0),
    "bigbench_conceptual_combinations": (1, 103, 4, 60, 0),
    "bigbench_elementary_math_qa": (1, 38160, 5, 70, 0),
    "bigbench_logical_deduction": (1, 1500, 5, 150, 0),
    "mathqa": (1, 2985, 5, 70, 0),
    "logiqa": (1, 651, 4, 250, 0),
    "humaneval": (1, 164, 1, 150, 512),
}


# --- parameter counts --------------------------------------------------------------------------------

def architecture(preset: Preset, base: str) -> Architecture:
    """The sizes of base `base`: faco's own model, or a real checkpoint's config (a directory, the hub cache,
    else the table of known architectures); a ConfigError names a checkpoint it cannot size."""
    spec = preset.base(base)
    if spec.checkpoint is None:
        model = preset.pretrain.model
        vocab = len(llama.vocabulary(tokenizer_texts(build_world(preset.world, preset.seed), preset.seed)))
        return Architecture(model.hidden_size, model.layers, model.intermediate_size, vocab, model.heads,
                            model.heads, True, model.max_positions)
    where = checkpoints.locate(f"base {base!r}", spec.checkpoint)
    config = _local_config(where)
    if config is not None:
        return from_config(config, str(config))
    name = spec.checkpoint.lower()
    found = next((arch for fragment, arch in KNOWN.items() if fragment in name), None)
    if found is None:
        raise ConfigError(f"base {base!r}: cannot size checkpoint {spec.checkpoint!r}: no local config.json and "
                          f"not a known architecture ({', '.join(KNOWN)})")
    return found


def _local_config(where: Path | str) -> Path | None:
    """A directory's config.json, or a hub id's in the local hub cache (no network); None if neither."""
    if isinstance(where, Path):
        return where / "config.json" if (where / "config.json").is_file() else None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(where, "config.json")
    return Path(cached) if isinstance(cached, str) else None


def from_config(path: Path, where: str) -> Architecture:
    """An Architecture from a transformers config.json."""
    try:
        config = json.loads(path.read_text())
        heads = config["num_attention_heads"]
        return Architecture(config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"],
                            config["vocab_size"], heads, config.get("num_key_value_heads") or heads,
                            bool(config.get("tie_word_embeddings", False)), config.get("max_position_embeddings", 2048))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{where}: not a decoder config faco can size ({type(error).__name__}: {error})") from None


# --- the grid ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grid:
    """What the study trains and evaluates: per base, its runs (epochs each) and the models evaluated."""

    runs: dict[str, list[tuple[str, int]]]  # base -> [(run label, epochs exported)]
    evaluated: dict[str, list[str]]  # base -> labels of the evaluated models (layout where several)
    kept: dict[str, int]  # base -> exports left after the grid (the last epoch's, unless all are kept)

    def exports(self, base: str) -> int:
        return sum(epochs for _, epochs in self.runs[base])

    @property
    def jobs(self) -> int:
        """Training runs plus evaluations: the units a scheduler runs (each on the launch's GPUs)."""
        return sum(len(runs) + len(self.evaluated[base]) for base, runs in self.runs.items())


def grid(preset: Preset, reads: Iterable[Read]) -> Grid:
    """The runs and evaluations of `reads` (what the findings read, faco.findings.registry): every CR's
    fine-tuning run of a base, its recovery run, and each (model, layout) scored once."""
    tune, keep = preset.finetune, preset.finetune.keep_epoch_checkpoints
    runs: dict[str, list[tuple[str, int]]] = {b.name: [] for b in preset.bases}
    evaluated: dict[str, list[str]] = {b.name: [] for b in preset.bases}
    for read in reads:
        base, ratio, recovered, epoch, layout = read[:5]
        name = run_label(base, ratio, recovered, read.share, read.kind)
        every = f" (a checkpoint every {read.every} steps)" if read.every is not None and not recovered else ""
        run = (name + every, tune.recovery_epochs if recovered else tune.epochs)
        if ratio is not None and run not in runs[base]:
            runs[base].append(run)
        if not layout:
            continue
        model = name if ratio is None or recovered else f"{name} epoch {epoch or tune.epochs}"
        label = model if preset.evaluation.benchmarks else f"{model} ({layout})"
        if label not in evaluated[base]:
            evaluated[base].append(label)
    kept = {base: sum(epochs if keep else 1 for _, epochs in base_runs) for base, base_runs in runs.items()}
    return Grid(runs, evaluated, kept)


# --- memory per GPU ----------------------------------------------------------------------------------

def memory(preset: Preset, arch: Architecture) -> list[tuple[str, float]]:
    """(what, GB) per GPU of one training process, the total last."""
    tune, launch = preset.finetune, preset.launch
    sharded = launch.sharding != "none"
    shards = launch.processes if sharded else 1
    weight_bytes = BYTES[tune.precision]
    trained = arch.lora_parameters(tune.lora) if tune.lora else arch.parameters
    optimizer = ADAM_BYTES + (MASTER_BYTES if tune.precision != "fp32" else 0)
    split = f", sharded over {shards}" if sharded else ""
    rows = [(f"weights ({tune.precision}{split})", arch.parameters * weight_bytes / shards),
            (f"gradients ({'adapters, ' if tune.lora else ''}{tune.precision}{split})", trained * weight_bytes / shards),
            ("optimizer state (Adam fp32 moments" + (" + fp32 master" if optimizer > ADAM_BYTES else "") + f"{split})",
             trained * optimizer / shards)]
    if sharded:
        rows.append((f"gathered layers ({FSDP_GATHERED_LAYERS} decoder layers, {tune.precision})",
                     FSDP_GATHERED_LAYERS * arch.layer_parameters * weight_bytes))
    rows.append(activations(preset, arch))
    rows = [(what, value / GB) for what, value in rows]
    return rows + [("total per GPU", sum(value for _, value in rows))]


def sequence_length(preset: Preset, arch: Architecture) -> int:
    return preset.finetune.max_length or arch.max_positions


def activations(preset: Preset, arch: Architecture) -> tuple[str, float]:
    """(label, bytes) of the activations one per-device batch keeps for the backward pass.

    Per layer and token a LLaMA layer keeps about 10 hidden-sized tensors (norm inputs and outputs, q, k, v,
    attention output, residuals) and 4 intermediate-sized ones (gate, up, their activation and product); the
    logits and their fp32 softmax keep 8 bytes per vocabulary entry and token."""
    tune = preset.finetune
    batch, _ = tune.accumulation(preset.launch.processes)
    tokens = batch * sequence_length(preset, arch)
    size = BYTES[tune.precision]
    per_layer = tokens * (10 * arch.hidden + 4 * arch.intermediate) * size
    logits = tokens * arch.vocab * 8
    if tune.gradient_checkpointing:
        kept = arch.layers * tokens * arch.hidden * size + per_layer + logits
        how = "checkpointed"
    else:
        kept = arch.layers * per_layer + logits
        how = "not checkpointed"
    return f"activations ({batch} x {sequence_length(preset, arch)} tokens, {how})", kept


def without_checkpointing(preset: Preset, arch: Architecture) -> float:
    """The activations' GB were gradient checkpointing off (a line of the plan: what it saves)."""
    off = preset.replace(finetune=dataclasses.replace(preset.finetune, gradient_checkpointing=False))
    return activations(off, arch)[1] / GB


# --- disk --------------------------------------------------------------------------------------------

def disk(preset: Preset, archs: dict[str, Architecture], plan_grid: Grid) -> list[tuple[str, float]]:
    """(what, GB) the grid writes: exports (written in all, kept after it), the resumable checkpoint, scores."""
    tune = preset.finetune
    export = {base: arch.parameters * BYTES[tune.precision] for base, arch in archs.items()}
    written = sum(plan_grid.exports(base) * export[base] for base in archs)
    kept = sum(plan_grid.kept[base] * export[base] for base in archs)
    largest = max(archs.values(), key=lambda arch: arch.parameters)
    trained = largest.lora_parameters(tune.lora) if tune.lora else largest.parameters
    optimizer = ADAM_BYTES + (MASTER_BYTES if tune.precision != "fp32" else 0)
    resumable = trained * (BYTES[tune.precision] + optimizer)  # LoRA: the Trainer saves the adapters only
    questions = sum(_questions(preset, spec_name) for spec_name, _ in _benchmark_sizes(preset))
    scores = questions * RECORD_BYTES * sum(len(models) for models in plan_grid.evaluated.values())
    keep = "every epoch kept" if tune.keep_epoch_checkpoints else "the last epoch's of each run"
    rows = [(f"exports written ({sum(map(plan_grid.exports, archs))} x {tune.precision})", written),
            (f"exports kept after the grid ({sum(plan_grid.kept.values())}: {keep})", kept),
            ("resumable checkpoint (weights + optimizer; x2 while a save rotates)", 2 * resumable),
            ("evaluation results", scores)]
    return [(what, value / GB) for what, value in rows]


# --- GPU-hours ---------------------------------------------------------------------------------------

def training_tokens(preset: Preset, arch: Architecture) -> tuple[int, int]:
    """(examples, tokens per example) of one epoch of fine-tuning: an upper bound at max_length for the world's
    items; PROMPT_TOKENS plus the teacher's cap for built ones."""
    items = preset.items
    if items.source == "world":
        return items.per_training_domain * len(preset.world.training_domains), sequence_length(preset, arch)
    if items.build is not None:
        count, reply = items.build.per_source * len(items.build.sources), items.build.max_tokens
    else:
        count, reply = len(load_dataset_items(Path(items.source))), 384
    return count, min(sequence_length(preset, arch), PROMPT_TOKENS + reply)


def _benchmark_sizes(preset: Preset) -> list[tuple[str, tuple[int, int, int, int, int]]]:
    specs = resolve(preset.evaluation.benchmarks) if preset.evaluation.benchmarks else []
    return [(spec.name, BENCHMARK_SIZES[spec.name]) for spec in specs]


def _questions(preset: Preset, name: str) -> int:
    tasks, questions, *_ = BENCHMARK_SIZES[name]
    limit = preset.evaluation.limit
    return questions if limit is None else min(questions, tasks * limit)


def evaluation_tokens(preset: Preset, arch: Architecture) -> int:
    """Tokens lm-eval runs through the model for one checkpoint: each request with its few-shot context
    (capped at the model's length), plus generated tokens; the world's tasks at 0 shots."""
    config = preset.evaluation
    if not config.benchmarks:
        world = preset.world
        questions = (config.heldback_per_domain * len(world.training_domains)
                     + config.heldout_per_domain * len(world.heldout_domains))
        return questions * len(config.formats) * world.options * WORLD_QUESTION_TOKENS
    counts = shots(resolve(config.benchmarks), config.num_fewshot)
    total = 0
    for name, (_, _, requests, per_example, generated) in _benchmark_sizes(preset):
        context = min(arch.max_positions, (counts[name] + 1) * per_example)
        total += _questions(preset, name) * requests * (context + generated)
    return total


def gpu_hours(preset: Preset, archs: dict[str, Architecture], plan_grid: Grid, gpu: str) -> list[tuple[str, float]]:
    """(what, GPU-hours) of fine-tuning and of evaluation on `gpu` at the assumed MFU."""
    tune = preset.finetune
    peak = PEAK_TFLOPS[gpu]["fp32" if tune.precision == "fp32" else "half"] * 1e12
    factor = 8 if tune.gradient_checkpointing else 6
    train = evaluate = 0.0
    pretrained = [base for base in archs if preset.base(base).checkpoint is None]
    if pretrained:  # one pre-training run gives every embedded base (its checkpoints at their steps)
        pretrain = preset.pretrain
        train += 6 * archs[pretrained[0]].parameters * pretrain.steps * pretrain.batch_size * pretrain.seq_len
    for base, arch in archs.items():
        examples, per_example = training_tokens(preset, arch)
        tokens = examples * per_example * plan_grid.exports(base)
        train += factor * arch.parameters * tokens
        evaluate += 2 * arch.parameters * evaluation_tokens(preset, arch) * len(plan_grid.evaluated[base])
    return [(f"{'pre-training and ' if pretrained else ''}fine-tuning ({factor} N FLOPs per token, MFU {MFU['train']})", train / (MFU["train"] * peak) / 3600),
            (f"evaluation (2 N FLOPs per token, MFU {MFU['eval']})", evaluate / (MFU["eval"] * peak) / 3600)]


# --- the plan ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    preset: Preset
    gpu: str
    archs: dict[str, Architecture]
    grid: Grid
    memory: dict[str, list[tuple[str, float]]]  # base -> rows, the total last
    disk: list[tuple[str, float]]
    hours: list[tuple[str, float]]

    @property
    def needed_gb(self) -> float:
        """The most memory one GPU needs, over the bases."""
        return max(rows[-1][1] for rows in self.memory.values())

    @property
    def fits(self) -> bool:
        return self.needed_gb <= self.preset.launch.gpu_memory_gb


def plan(preset: Preset, reads: Sequence[Read], gpu: str = "a100") -> Plan:
    """The costs of running `reads` of `preset` on GPUs of kind `gpu` (a key of PEAK_TFLOPS)."""
    if gpu not in PEAK_TFLOPS:
        raise ConfigError(f"unknown GPU {gpu!r}; known: {sorted(PEAK_TFLOPS)}")
    archs = {b.name: architecture(preset, b.name) for b in preset.bases}
    the_grid = grid(preset, reads)
    return Plan(preset, gpu, archs, the_grid, {base: memory(preset, arch) for base, arch in archs.items()},
                disk(preset, archs, the_grid), gpu_hours(preset, archs, the_grid, gpu))


def refusal(the_plan: Plan) -> str:
    """The one-line reason a plan that does not fit is refused, with the numbers."""
    launch = the_plan.preset.launch
    base, rows = max(the_plan.memory.items(), key=lambda item: item[1][-1][1])
    parts = ", ".join(f"{what.split(' (')[0]} {value:.1f}" for what, value in rows[:-1])
    hint = ('set launch.sharding = "fsdp" (weights, gradients and Adam state sharded over the GPUs)'
            if launch.sharding == "none" else "use more GPUs (launch.processes), LoRA or a smaller per-device batch")
    return (f"preset {the_plan.preset.name!r} does not fit: base {base!r} needs {rows[-1][1]:.1f} GB per GPU "
            f"({parts} GB) with launch.sharding = {launch.sharding!r} on {launch.processes} GPU(s) of "
            f"{launch.gpu_memory_gb:g} GB; {hint}")


def render(the_plan: Plan) -> str:
    """The plan as a reader checks it: grid, memory table, disk, GPU-hours, the assumptions named."""
    preset, launch = the_plan.preset, the_plan.preset.launch
    grid_ = the_plan.grid
    lines = [f"faco plan: preset {preset.name}, {launch.processes} GPU(s) x {launch.gpu_memory_gb:g} GB "
             f"({the_plan.gpu}), sharding {launch.sharding}; GB = 10^9 bytes", "", "grid:"]
    for base, arch in the_plan.archs.items():
        runs = ", ".join(f"{label} ({epochs} ep)" for label, epochs in grid_.runs[base])
        lines += [f"  base {base}: {arch.parameters / 1e9:.3f} B parameters ({arch.layers} layers, hidden "
                  f"{arch.hidden}, vocab {arch.vocab})",
                  f"    {len(grid_.runs[base])} training runs: {runs}",
                  f"    {len(grid_.evaluated[base])} checkpoints evaluated, every epoch the longer-training "
                  f"finding reads included"]
    lines.append(f"  {grid_.jobs} jobs (training runs + evaluations)")
    lines += ["", "memory per GPU (GB):", _table(the_plan.memory)]
    if preset.finetune.gradient_checkpointing:
        lines += [f"  {base}: activations without gradient checkpointing {without_checkpointing(preset, arch):.1f} GB"
                  for base, arch in the_plan.archs.items()]
    lines += ["", "disk (GB):", *[f"  {what:<68} {value:>10.1f}" for what, value in the_plan.disk]]
    peak = PEAK_TFLOPS[the_plan.gpu]
    lines += ["", f"GPU-hours on {the_plan.gpu} (peak {peak['half']:g} TFLOP/s bf16, {peak['fp32']:g} fp32):",
              *[f"  {what:<68} {value:>10.2f}" for what, value in the_plan.hours],
              f"  {'total':<68} {sum(v for _, v in the_plan.hours):>10.2f}  "
              f"(= {sum(v for _, v in the_plan.hours) / launch.processes:.1f} h on {launch.processes} GPU(s))", ""]
    verdict = "fits" if the_plan.fits else "does NOT fit"
    lines.append(f"{verdict}: {the_plan.needed_gb:.1f} GB per GPU of {launch.gpu_memory_gb:g} GB "
                 f"on {launch.processes} x {launch.gpu_memory_gb:g} GB with sharding {launch.sharding}")
    return "\n".join(lines)


def _table(memory_rows: dict[str, list[tuple[str, float]]]) -> str:
    bases = list(memory_rows)
    header = f"  {'':<66}" + "".join(f" {base:>10}" for base in bases)
    rows = [header]
    for index, (what, _) in enumerate(memory_rows[bases[0]]):
        values = "".join(f" {memory_rows[base][index][1]:>10.2f}" for base in bases)
        rows.append(f"  {what:<66}{values}")
    return "\n".join(rows)


def as_json(the_plan: Plan) -> dict[str, Any]:
    """The plan's numbers as plain JSON (tests, scripts)."""
    return {"preset": the_plan.preset.name, "gpu": the_plan.gpu, "fits": the_plan.fits,
            "needed_gb": the_plan.needed_gb, "parameters": {b: a.parameters for b, a in the_plan.archs.items()},
            "runs": {b: len(r) for b, r in the_plan.grid.runs.items()},
            "evaluated": {b: len(e) for b, e in the_plan.grid.evaluated.items()}, "jobs": the_plan.grid.jobs,
            "memory": the_plan.memory, "disk": dict(the_plan.disk), "gpu_hours": dict(the_plan.hours)}
