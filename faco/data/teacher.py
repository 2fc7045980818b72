"""The teacher: an instruct model behind any OpenAI-compatible server writes the TRUE and FALSE chains.

Paid work is never lost: every reply is committed to a SQLite cache the moment it arrives, keyed by
(model, prompt set, messages, parameters), so a killed build restarts without paying twice.
Requests run under a bounded semaphore; 408, 409, 429, 5xx, timeouts, dropped or reset connections and
malformed replies (a cut-off one, finish_reason "length", included) are retried with exponential backoff
and jitter, or after the server's Retry-After, bounded (the openai client's own retries are off, so every
attempt is counted here). A 400, 413 or 422 is about the request itself: retrying cannot fix it, so the
item is rejected, the rejection recorded in the cache (a rerun does not send it again) and the build
goes on. The API key comes only from the environment (FACO_TEACHER_API_KEY, else
OPENAI_API_KEY) and is never written to the cache, the summary or a log.

    async with Teacher(TeacherConfig(base_url="http://127.0.0.1:8000/v1", model="m"), cache) as teacher:
        reply = await teacher.ask(true_messages(question, options, answer, reference))
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from faco.data.prompts import DEFAULT_PROMPTS, PROMPT_SETS, WRONG_ANSWER, false_messages, true_messages  # noqa: F401

log = logging.getLogger("faco.data.teacher")

UNFIXABLE = (400, 413, 422)  # the request itself is refused (e.g. context length exceeded): drop the item
RETRIED_STATUS = (408, 409)  # request timeout, conflict: transient, like 429 and 5xx


def disagrees(text: str) -> bool:
    """The teacher refused the ground truth (the paper drops such items)."""
    return "WRONG ANSWER" in text.upper()


def names_option(text: str, option: str, argued: str) -> bool:
    """Whether a FALSE chain names `option` (the correct one) outside mentions of the `argued` option."""
    cleaned = re.sub(re.escape(argued), " ", text, flags=re.I) if argued.strip() else text
    return re.search(rf"(?<!\w){re.escape(option.strip())}(?!\w)", cleaned, flags=re.I) is not None


# --- config, prices -------------------------------------------------------------------------------

class TeacherError(RuntimeError):
    """The teacher cannot go on (server down, key refused, retries exhausted); the cache keeps what was paid."""


class MalformedReply(ValueError):
    """A reply without usable text; retried, then the item is dropped and counted."""


class Rejected(ValueError):
    """The server refused this request (400, 413, 422): the item is dropped with the reason, not retried."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"rejected with {status}: {message}")
        self.status, self.message = status, message


@dataclass(frozen=True)
class TeacherConfig:
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-3.5-turbo"  # the paper's teacher was ChatGPT
    concurrency: int = 8  # requests in flight; throughput ~ concurrency / latency (benchmarks/)
    max_tokens: int = 384  # a few-sentence chain; part of the cache key
    temperature: float = 0.7  # part of the cache key
    timeout_s: float = 120.0  # per request; a timeout is retried
    max_retries: int = 6  # retries per request after the first attempt
    backoff_s: float = 1.0  # first retry waits ~this; doubles each retry, with jitter
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 60.0  # a server's Retry-After is honoured up to this; a longer one is capped
    false_tries: int = 3  # FALSE chains that name the correct answer are regenerated this often, then dropped
    prompts: str = DEFAULT_PROMPTS  # the prompt set (faco.data.prompts); part of the cache key
    # what the reply cache and the items record as the teacher (default: `model`). A served checkpoint's
    # model name is its path on this machine; it records its weights' key, so a moved cache stays warm
    identity: str | None = None

    def __post_init__(self) -> None:
        for name in ("concurrency", "max_tokens", "timeout_s", "false_tries"):
            if not getattr(self, name) > 0:
                raise TeacherError(f"teacher {name} must be > 0, got {getattr(self, name)!r}")
        if self.max_retries < 0 or self.backoff_s < 0 or not self.retry_after_max_s >= 0:
            raise TeacherError("teacher max_retries, backoff_s and retry_after_max_s must be >= 0")
        if self.prompts not in PROMPT_SETS:
            raise TeacherError(f"unknown prompt set {self.prompts!r}; known: {', '.join(PROMPT_SETS)}")

    def params(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature}

    @property
    def teacher(self) -> str:
        """The teacher as replies and items name it: its identity, else the API's model name."""
        return self.identity or self.model


def api_key(base_url: str) -> str:
    """The key from the environment only; a loopback server takes any string."""
    key = os.environ.get("FACO_TEACHER_API_KEY") or os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    if urlparse(base_url).hostname in ("127.0.0.1", "localhost", "::1"):
        return "local-no-key"
    raise TeacherError(f"no API key for {base_url}: set FACO_TEACHER_API_KEY (or OPENAI_API_KEY)")


@dataclass(frozen=True)
class Prices:
    input_per_1m: float  # currency units per million prompt tokens
    output_per_1m: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6


def load_prices(path: Path, model: str) -> Prices:
    """{"input": x, "output": y} per 1M tokens, or {"<model>": {"input": x, "output": y}, ...}."""
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
        entry = table.get(model, table) if isinstance(table, dict) else None
        return Prices(float(entry["input"]), float(entry["output"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TeacherError(f"{path}: not a price table for {model!r} "
                           f'(want {{"input": USD per 1M tokens, "output": ...}}): {error}') from None


# --- the persistent reply cache -------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


def cache_key(model: str, messages: Sequence[dict[str, str]], params: dict[str, Any], attempt: int,
              prompts: str = DEFAULT_PROMPTS) -> str:
    """sha256 over what determines a reply; `attempt` tells regenerations of one prompt apart. The prompt
    set's name goes in as "prompt_version", as before sets had names: faco-v1 replies keep their keys."""
    blob = json.dumps({"model": model, "prompt_version": prompts, "messages": list(messages),
                       "params": params, "attempt": attempt}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    """SQLite, one row per reply, committed as it arrives (WAL: a killed process loses no commit)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._open()
        except sqlite3.DatabaseError as error:  # truncated or garbled: kept as evidence, replies asked again
            self._db.close()
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{self.path}{suffix}").exists():
                    Path(f"{self.path}{suffix}").rename(f"{aside}{suffix}")
            log.warning("reply cache %s is damaged (%s); moved it aside to %s and starting a new one",
                        self.path, error, aside)
            self._open()

    def _open(self) -> None:
        """Connect and check the whole file before anything reads it (a damaged page raises here)."""
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self._db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("PRAGMA quick_check failed")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT, prompt_version TEXT, "
            "messages TEXT, params TEXT, text TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, "
            "created REAL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS rejections (key TEXT PRIMARY KEY, status INTEGER, "
                         "message TEXT, created REAL)")

    def get(self, key: str) -> Reply | None:
        row = self._db.execute("SELECT text, prompt_tokens, completion_tokens FROM replies WHERE key = ?",
                               (key,)).fetchone()
        return None if row is None else Reply(row[0], row[1], row[2], cached=True)

    def put(self, key: str, model: str, messages: Sequence[dict[str, str]], params: dict[str, Any],
            reply: Reply, prompts: str = DEFAULT_PROMPTS) -> None:
        self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (key, model, prompts, json.dumps(list(messages), ensure_ascii=False),
                          json.dumps(params), reply.text, reply.prompt_tokens, reply.completion_tokens, time.time()))

    def rejection(self, key: str) -> Rejected | None:
        """The server's refusal of this request, recorded so that a rerun does not send it again."""
        row = self._db.execute("SELECT status, message FROM rejections WHERE key = ?", (key,)).fetchone()
        return None if row is None else Rejected(row[0], row[1])

    def reject(self, key: str, rejected: Rejected) -> None:
        self._db.execute("INSERT OR REPLACE INTO rejections VALUES (?, ?, ?, ?)",
                         (key, rejected.status, rejected.message, time.time()))

    def keys(self) -> set[str]:
        """Keys a build will not send again: answered or rejected."""
        return {row[0] for row in self._db.execute("SELECT key FROM replies UNION SELECT key FROM rejections")}

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self._db.close()


# --- the client -----------------------------------------------------------------------------------

@dataclass
class TeacherStats:
    requests: int = 0  # HTTP requests sent (retries included): what the server saw
    replies: int = 0  # replies received and cached: what was paid
    cache_hits: int = 0  # replies and recorded rejections read from the cache
    rejected: int = 0  # requests the server refused (400, 413, 422) in this run
    retries: Counter[str] = field(default_factory=Counter)  # per reason: 408, 409, 429, 5xx, timeout, connection, ...
    prompt_tokens: int = 0  # of replies received in this run (cached ones are counted in the summary)
    completion_tokens: int = 0
    sent_keys: list[str] = field(default_factory=list)  # cache key of every request sent, in order


class Teacher:
    """Ask an OpenAI-compatible chat server, through the cache; use as `async with Teacher(...)`."""

    def __init__(self, config: TeacherConfig, cache: ReplyCache) -> None:
        self.config = config
        self.cache = cache
        self.stats = TeacherStats()
        self._inflight: dict[str, asyncio.Future[Reply]] = {}
        self._client: Any = None
        self._semaphore: asyncio.Semaphore | None = None

    async def __aenter__(self) -> Teacher:
        self._semaphore = asyncio.Semaphore(self.config.concurrency)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()

    def _connected(self) -> Any:
        """The client, made on the first request: a build that needs no teacher (code sources, a warm
        reply cache) needs no API key either."""
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(base_url=self.config.base_url, api_key=api_key(self.config.base_url),
                                       max_retries=0, timeout=self.config.timeout_s)
        return self._client

    def key(self, messages: Sequence[dict[str, str]], attempt: int = 0) -> str:
        return cache_key(self.config.teacher, messages, self.config.params(), attempt, self.config.prompts)

    async def ask(self, messages: Sequence[dict[str, str]], attempt: int = 0) -> Reply:
        """The reply to `messages` (regeneration number `attempt`): cached, joined in flight, or fetched."""
        key = self.key(messages, attempt)
        cached = self.cache.get(key) or self.cache.rejection(key)
        if cached is not None:
            self.stats.cache_hits += 1
            if isinstance(cached, Rejected):
                raise cached
            return cached
        if key in self._inflight:  # the same prompt asked twice at once is paid once
            return await asyncio.shield(self._inflight[key])
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            try:
                reply = await self._fetch(key, messages)
            except Rejected as rejected:
                self.cache.reject(key, rejected)
                raise
            self.cache.put(key, self.config.teacher, messages, self.config.params(), reply, self.config.prompts)
            future.set_result(reply)
            return reply
        except BaseException as error:
            if isinstance(error, Exception):
                future.set_exception(error)
                future.exception()  # retrieved: a lone caller must not log "never retrieved"
            else:
                future.cancel()
            raise
        finally:
            del self._inflight[key]

    async def _fetch(self, key: str, messages: Sequence[dict[str, str]]) -> Reply:
        for attempt in range(self.config.max_retries + 1):
            try:
                async with self._semaphore:  # type: ignore[union-attr]
                    self.stats.requests += 1
                    self.stats.sent_keys.append(key)
                    completion = await self._connected().chat.completions.create(
                        model=self.config.model, messages=list(messages), **self.config.params())
                reply = _parse(completion)
                self.stats.replies += 1
                self.stats.prompt_tokens += reply.prompt_tokens
                self.stats.completion_tokens += reply.completion_tokens
                return reply
            except Exception as error:  # noqa: BLE001 - sorted into rejected, retryable or fatal below
                if getattr(error, "status_code", None) in UNFIXABLE:
                    self.stats.rejected += 1
                    raise Rejected(error.status_code, _describe(error)) from None
                reason = _retry_reason(error)
                if reason is None:
                    raise TeacherError(f"teacher {self.config.base_url} ({self.config.model}): {_describe(error)}") from None
                if attempt == self.config.max_retries:
                    if reason == "malformed":
                        raise MalformedReply(f"malformed reply after {attempt + 1} tries: {_describe(error)}") from None
                    raise TeacherError(f"teacher {self.config.base_url}: gave up after {attempt + 1} tries "
                                       f"({_describe(error)})") from None
                self.stats.retries[reason] += 1
                wait = retry_after(error, self.config.retry_after_max_s)
                await asyncio.sleep(self._backoff(attempt) if wait is None else wait)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: concurrent retries spread instead of stampeding."""
        delay = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** attempt)
        return delay / 2 + random.uniform(0, delay / 2)


def _parse(completion: Any) -> Reply:
    try:
        text = completion.choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        raise MalformedReply(f"no choices[0].message.content in {str(completion)[:200]!r}") from None
    if not isinstance(text, str) or not text.strip():
        raise MalformedReply(f"empty reply text {text!r}")
    if getattr(completion.choices[0], "finish_reason", None) == "length":  # cut off at max_tokens: no chain
        raise MalformedReply(f"reply cut off at max_tokens (finish_reason 'length'): {text[-80:]!r}")
    usage = getattr(completion, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None) or 0
    completion_tokens = getattr(usage, "completion_tokens", None) or 0
    return Reply(text.strip(), int(prompt), int(completion_tokens))


def _retry_reason(error: Exception) -> str | None:
    import openai

    if isinstance(error, (MalformedReply, json.JSONDecodeError, openai.APIResponseValidationError)):
        return "malformed"
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection"
    if isinstance(error, openai.RateLimitError):
        return "429"
    if isinstance(error, openai.APIStatusError) and error.status_code in RETRIED_STATUS:
        return str(error.status_code)
    if isinstance(error, openai.APIStatusError) and error.status_code >= 500:
        return "5xx"
    return None


def retry_after(error: Exception, bound: float) -> float | None:
    """Seconds the server asked us to wait (Retry-After: seconds or an HTTP date), at most `bound`;
    None when it did not ask (then the backoff decides)."""
    headers = getattr(getattr(error, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), bound) if seconds == seconds else None  # NaN: not a usable answer


def _describe(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    return f"{type(error).__name__}{f' {status}' if status else ''}: {str(error)[:300]}"


def estimate_tokens(messages: Sequence[dict[str, str]]) -> int:
    """Rough prompt tokens for --dry-run: ~4 characters per token for English, plus chat overhead."""
    return sum(len(m["content"]) for m in messages) // 4 + 4 * len(messages)
