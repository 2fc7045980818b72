"""Build the real FACO dataset: nine sources -> items with a TRUE and a FALSE chain -> a `datasets` dir.

    faco build-dataset --data-dir DATA --base-url http://127.0.0.1:8000/v1 --model M --out facodata

Per source, rows are loaded (faco.data.sources), sampled (seeded, up to --per-source), given a seeded wrong
option, and sent to the teacher: the TRUE chain first (an item whose teacher answers *WRONG ANSWER* is
dropped), then the FALSE chain (regenerated while it names the correct option, then dropped). Code
sources need no teacher: the FALSE answer is another item's code. The output directory holds the
dataset (`datasets.load_from_disk`), `summary.json` (items and drops per source, tokens, cost) and
`dropped.jsonl`; `load_dataset_items(dir)` turns it back into `FacoItem`s for the experiments.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from faco.core.cache import Cache
from faco.data.dataset import load_dataset_items, write_dataset  # noqa: F401 - load_dataset_items: faco.data.build's API
from faco.data.items import FacoItem, ItemError, wrong_option
from faco.data.sources import SOURCES, LoadReport, SourceError, SourceItem, load_from_data_dir, load_source, sample
from faco.data.teacher import (
    MalformedReply, Prices, Rejected, Reply, ReplyCache, Teacher, TeacherConfig, cache_key, disagrees,
    estimate_tokens, false_messages, names_option, true_messages,
)

CODE_EXPLANATION = "The following Python code does this."  # code items carry no chain (as in the paper)


@dataclass(frozen=True)
class BuildConfig:
    out: Path
    sources: tuple[str, ...] = tuple(SOURCES)
    data_dir: Path | None = None  # local copies (each source's `local` paths under it); None: the hub
    source_paths: Mapping[str, Path] = field(default_factory=dict)  # per-source file or dir, before data_dir
    per_source: int = 3000  # the paper: about 3,000 items per source, ~20K in all
    seed: int = 0  # sampling, wrong options, code false answers
    lenient: bool = False  # skip and count malformed rows instead of stopping at the first
    reply_cache: Path | None = None  # None: <faco cache dir>/teacher/replies.sqlite

    def __post_init__(self) -> None:
        for name in list(self.sources) + list(self.source_paths):
            if name not in SOURCES:
                raise SourceError(f"unknown source {name!r}; known sources: {', '.join(SOURCES)}")
        if self.per_source <= 0:
            raise SourceError(f"per_source must be > 0, got {self.per_source}")

    def cache_path(self) -> Path:
        return self.reply_cache or Cache.default_root() / "teacher" / "replies.sqlite"


@dataclass(frozen=True)
class Planned:
    """A sampled source item with its seeded wrong option (code: another item's code)."""

    item: SourceItem
    false_option: int
    false_code: str | None = None
    false_from: str | None = None


@dataclass(frozen=True)
class Outcome:
    source: str
    item: FacoItem | None
    drop: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


# --- planning: load, sample, choose wrong options -------------------------------------------------

def plan(config: BuildConfig) -> tuple[list[Planned], dict[str, dict[str, Any]]]:
    """The items to build, and per source what loading read and skipped."""
    planned: list[Planned] = []
    loading: dict[str, dict[str, Any]] = {}
    for name in config.sources:
        report = LoadReport()
        if name in config.source_paths:
            rows = load_source(name, Path(config.source_paths[name]), config.lenient, report)
        elif config.data_dir is not None:
            rows = load_from_data_dir(name, Path(config.data_dir), config.lenient, report)
        else:
            rows = load_source(name, None, config.lenient, report)
        chosen = sample(rows, config.per_source, config.seed, name)
        code = SOURCES[name].domain == "code"
        planned += _plan_code(chosen, config.seed) if code else _plan_options(chosen, config.seed)
        loading[name] = {"rows": report.rows, "usable": len(rows), "sampled": len(chosen),
                         "skipped": dict(report.skipped)}
    ids = Counter(p.item.id for p in planned)
    repeated = [i for i, n in ids.items() if n > 1]
    if repeated:
        raise SourceError(f"item ids repeat across files (same split name twice?): {repeated[:5]}")
    return planned, loading


def _false_seed(item: SourceItem, seed: int) -> str:
    """The seed text of `item`'s FALSE answer: its wrong option, or (code) the other item's code."""
    return f"{seed}:false:{item.id}"


def _plan_options(items: Sequence[SourceItem], seed: int) -> list[Planned]:
    """Each item's FALSE answer is a seeded wrong option of its own."""
    return [Planned(item, wrong_option(item.options, item.correct, _false_seed(item, seed))) for item in items]


def _plan_code(items: Sequence[SourceItem], seed: int) -> list[Planned]:
    """Each item's FALSE answer is a seeded other item's code (a different snippet)."""
    planned = []
    for item in items:
        rng = random.Random(_false_seed(item, seed))
        others = [o for o in items if o.options[0] != item.options[0]]
        if not others:
            planned.append(Planned(item, 1, None, None))  # dropped later: nothing to take a false answer from
            continue
        other = rng.choice(others)
        planned.append(Planned(item, 1, other.options[0], other.id))
    return planned


# --- teaching -------------------------------------------------------------------------------------

def _base_provenance(planned: Planned, teacher: TeacherConfig | None) -> dict[str, Any]:
    provenance = dict(planned.item.provenance)
    if teacher is not None:
        provenance.update(teacher_model=teacher.teacher, prompt_version=teacher.prompts)
    return provenance


def _item(planned: Planned, true_text: str, false_text: str, provenance: dict[str, Any],
          options: Sequence[str] | None = None) -> FacoItem:
    source = planned.item
    return FacoItem(id=source.id, source=source.source, domain=source.domain, question=source.question,
                    options=tuple(options or source.options), correct=source.correct,
                    false_option=planned.false_option, true_explanation=true_text, false_explanation=false_text,
                    source_explanation=source.source_explanation, provenance=provenance)


def code_outcome(planned: Planned) -> Outcome:
    if planned.false_code is None:
        return Outcome(planned.item.source, None, "no_other_code")
    provenance = {**planned.item.provenance, "false_from": planned.false_from}
    item = _item(planned, CODE_EXPLANATION, CODE_EXPLANATION, provenance, (planned.item.options[0], planned.false_code))
    return Outcome(planned.item.source, item)


async def teach(planned: Planned, teacher: Teacher, usage: Counter[str]) -> Outcome:
    """TRUE chain (dropped on *WRONG ANSWER*), then FALSE chains until one does not name the truth."""
    source = planned.item
    correct, wrong = source.options[source.correct], source.options[planned.false_option]
    prompts = teacher.config.prompts
    try:
        true = await teacher.ask(true_messages(source.question, source.options, correct, source.source_explanation,
                                               prompts))
        _count(usage, true)
        if disagrees(true.text):
            return Outcome(source.source, None, "teacher_disagrees")
        reason = "false_names_correct"
        for attempt in range(teacher.config.false_tries):
            false = await teacher.ask(false_messages(source.question, source.options, wrong, prompts), attempt)
            _count(usage, false)
            if disagrees(false.text):
                reason = "false_refused"  # the teacher would not argue for the wrong option
            elif names_option(false.text, correct, wrong):
                reason = "false_names_correct"
            else:
                provenance = {**_base_provenance(planned, teacher.config), "false_tries": attempt + 1}
                return Outcome(source.source, _item(planned, _chain(true.text), _chain(false.text), provenance))
        return Outcome(source.source, None, reason)
    except MalformedReply:
        return Outcome(source.source, None, "teacher_malformed")
    except Rejected as rejected:  # e.g. context length exceeded: this item only, recorded in the reply cache
        return Outcome(source.source, None, "teacher_rejected", {"status": rejected.status, "error": rejected.message})
    except ItemError as error:  # e.g. a chain that is not text; never silently kept
        return Outcome(source.source, None, "invalid_item", {"error": str(error)})


def _chain(text: str) -> str:
    """A reply as a chain: small models often echo the prompt's closing label first."""
    return re.sub(r"^\s*step[- ]by[- ]step explanation\s*:\s*", "", text, flags=re.I).strip() or text


def _count(usage: Counter[str], reply: Reply) -> None:
    usage["prompt_tokens"] += reply.prompt_tokens
    usage["completion_tokens"] += reply.completion_tokens
    usage["replies"] += 1


async def teach_all(planned: Sequence[Planned], teacher_config: TeacherConfig, cache: ReplyCache,
                    progress: bool = True) -> tuple[list[Outcome], Teacher, Counter[str]]:
    from tqdm.auto import tqdm

    usage: Counter[str] = Counter()
    outcomes: list[Outcome | None] = [None] * len(planned)
    async with Teacher(teacher_config, cache) as teacher:
        async def one(index: int, job: Planned) -> None:
            code = SOURCES[job.item.source].domain == "code"
            outcome = code_outcome(job) if code else await teach(job, teacher, usage)
            if outcome.drop:  # dropped.jsonl says which row was dropped, not only why
                outcome = replace(outcome, detail={"id": job.item.id, **outcome.detail,
                                                   "provenance": dict(job.item.provenance)})
            outcomes[index] = outcome

        tasks = [asyncio.create_task(one(i, job)) for i, job in enumerate(planned)]
        try:
            with tqdm(total=len(tasks), desc="faco items", unit="item", disable=not progress) as bar:
                for done in asyncio.as_completed(tasks):
                    await done
                    bar.update()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return [o for o in outcomes if o is not None], teacher, usage


# --- the whole build ------------------------------------------------------------------------------

def build_dataset(config: BuildConfig, teacher_config: TeacherConfig, prices: Prices | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Build and write the dataset; returns the summary (also written to <out>/summary.json)."""
    started = time.time()
    planned, loading = plan(config)
    cache = ReplyCache(config.cache_path())
    try:
        outcomes, teacher, usage = asyncio.run(teach_all(planned, teacher_config, cache, progress))
    finally:
        cache.close()
    items = [o.item for o in outcomes if o.item is not None]
    summary = _summary(config, teacher_config, prices, loading, outcomes, usage, teacher)
    summary["seconds"] = round(time.time() - started, 1)
    write_dataset(items, [o for o in outcomes if o.item is None], summary, Path(config.out))
    return summary


def _summary(config: BuildConfig, teacher_config: TeacherConfig, prices: Prices | None,
             loading: dict[str, dict[str, Any]], outcomes: Sequence[Outcome], usage: Counter[str],
             teacher: Teacher) -> dict[str, Any]:
    per_source: dict[str, Any] = {}
    for name, loaded in loading.items():
        mine = [o for o in outcomes if o.source == name]
        per_source[name] = {**loaded, "domain": SOURCES[name].domain,
                            "items": sum(o.item is not None for o in mine),
                            "dropped": dict(Counter(o.drop for o in mine if o.drop))}
    stats = teacher.stats
    return {
        "items": sum(s["items"] for s in per_source.values()),
        "per_source": per_source,
        "dropped": dict(sum((Counter(s["dropped"]) for s in per_source.values()), Counter())),
        "teacher": {"base_url": teacher_config.base_url, "model": teacher_config.teacher,
                    "prompt_version": teacher_config.prompts, **teacher_config.params(),
                    "false_tries": teacher_config.false_tries},
        "requests": {"sent": stats.requests, "paid_replies": stats.replies, "cache_hits": stats.cache_hits,
                     "rejected": stats.rejected, "retries": dict(stats.retries)},
        "tokens": {"prompt": usage["prompt_tokens"], "completion": usage["completion_tokens"],
                   "replies": usage["replies"], "paid_this_run_prompt": stats.prompt_tokens,
                   "paid_this_run_completion": stats.completion_tokens},
        "cost": None if prices is None else {
            "dataset": round(prices.cost(usage["prompt_tokens"], usage["completion_tokens"]), 6),
            "this_run": round(prices.cost(stats.prompt_tokens, stats.completion_tokens), 6),
            "input_per_1m": prices.input_per_1m, "output_per_1m": prices.output_per_1m},
        "seed": config.seed, "per_source_limit": config.per_source, "lenient": config.lenient,
    }


# --- dry run --------------------------------------------------------------------------------------

def dry_run(config: BuildConfig, teacher_config: TeacherConfig, prices: Prices | None = None) -> dict[str, Any]:
    """Requests a build would send (first TRUE and FALSE request per item, not yet cached) and their cost.

    Prompt tokens are estimated at 4 characters per token; completion tokens at max_tokens (an upper
    bound). Regenerated FALSE chains (at most false_tries - 1 more per item) are not counted.
    """
    planned, loading = plan(config)
    cache_file = config.cache_path()
    keys = ReplyCache(cache_file).keys() if cache_file.exists() else set()
    requests = cached = prompt_tokens = 0
    per_source: Counter[str] = Counter()
    for job in planned:
        if SOURCES[job.item.source].domain == "code":
            continue
        item = job.item
        prompts = teacher_config.prompts
        for messages in (true_messages(item.question, item.options, item.options[item.correct],
                                       item.source_explanation, prompts),
                         false_messages(item.question, item.options, item.options[job.false_option], prompts)):
            requests += 1
            if cache_key(teacher_config.teacher, messages, teacher_config.params(), 0, prompts) in keys:
                cached += 1
                continue
            per_source[item.source] += 1
            prompt_tokens += estimate_tokens(messages)
    to_send = requests - cached
    completion_tokens = to_send * teacher_config.max_tokens
    return {"planned_items": {name: loaded["sampled"] for name, loaded in loading.items()},
            "load_skipped": {name: loaded["skipped"] for name, loaded in loading.items() if loaded["skipped"]},
            "requests": requests, "cached": cached, "to_send": to_send, "to_send_per_source": dict(per_source),
            "estimated_prompt_tokens": prompt_tokens, "estimated_completion_tokens_max": completion_tokens,
            "estimated_cost_max": None if prices is None else round(prices.cost(prompt_tokens, completion_tokens), 4),
            "model": teacher_config.model, "prompt_version": teacher_config.prompts, "reply_cache": str(cache_file)}
