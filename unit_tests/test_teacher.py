"""The teacher client against a loopback fault server: retries, cache, concurrency, the key.

Every fault the build must survive (429, 5xx, timeouts, malformed replies) is injected by script and
each request is counted, so "retried", "paid once" and "never requested twice" are exact assertions.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from fault_server import DEFAULT_REPLY, FaultServer, prompt_hash

from faco.data.prompts import APPENDIX_A, DEFAULT_PROMPTS, FALSE_SLOTS, PAPER, PROMPT_SETS, SLOTS, PromptSet
from faco.data.teacher import (
    MalformedReply, Prices, Rejected, ReplyCache, Teacher, TeacherConfig, TeacherError, api_key, cache_key,
    disagrees, false_messages, load_prices, names_option, true_messages,
)

FAST = {"timeout_s": 1.0, "backoff_s": 0.01, "backoff_max_s": 0.05}
QUESTION = ("What makes water boil?", ("heat", "ice", "salt"))


def messages(i: int = 0) -> list[dict[str, str]]:
    return true_messages(f"{QUESTION[0]} ({i})", QUESTION[1], "heat", None)


def run(server: FaultServer, cache: ReplyCache, coroutine_of, **config):
    """Run `coroutine_of(teacher)` with a fresh Teacher on `server`; returns (result, teacher stats)."""
    teacher_config = TeacherConfig(base_url=server.url, model="fault", **{**FAST, **config})

    async def go():
        async with Teacher(teacher_config, cache) as teacher:
            return await coroutine_of(teacher), teacher.stats

    return asyncio.run(go())


@pytest.fixture
def cache(tmp_path):
    replies = ReplyCache(tmp_path / "replies.sqlite")
    yield replies
    replies.close()


def test_every_fault_is_retried_then_the_reply_is_cached(cache):
    faults = ["429", "500", "503", "timeout", "malformed", "no_choices", "empty"]
    with FaultServer(faults=faults, hang_s=1.5) as server:
        reply, stats = run(server, cache, lambda t: t.ask(messages()), max_retries=len(faults))
    assert reply.text == DEFAULT_REPLY and reply.completion_tokens > 0
    assert stats.requests == len(faults) + 1 and stats.replies == 1
    assert stats.retries == {"429": 1, "5xx": 2, "timeout": 1, "malformed": 3}
    assert len(cache) == 1


def test_transient_statuses_and_resets_are_retried(cache):
    faults = ["408", "409", "502", "504", "reset"]
    with FaultServer(faults=faults) as server:
        reply, stats = run(server, cache, lambda t: t.ask(messages()), max_retries=len(faults))
    assert reply.text == DEFAULT_REPLY and stats.requests == len(faults) + 1
    assert stats.retries == {"408": 1, "409": 1, "5xx": 2, "connection": 1}


def test_a_cut_off_reply_is_malformed_and_never_cached(cache):
    with FaultServer(faults=["length"]) as server:
        reply, stats = run(server, cache, lambda t: t.ask(messages()))
    assert not reply.cached and stats.retries == {"malformed": 1} and len(cache) == 1  # the full reply only
    with FaultServer(faults=["length"] * 3) as server, pytest.raises(MalformedReply, match="finish_reason 'length'"):
        run(server, cache, lambda t: t.ask(messages(1)), max_retries=2)
    assert len(cache) == 1


@pytest.mark.parametrize("status", ["400", "413", "422"])
def test_a_request_the_server_refuses_is_rejected_once_and_recorded(cache, status):
    with FaultServer(faults=[status]) as server:
        with pytest.raises(Rejected, match=f"rejected with {status}") as error:
            run(server, cache, lambda t: t.ask(messages()))
        assert error.value.status == int(status) and len(server.log) == 1  # not retried
        with pytest.raises(Rejected, match=f"rejected with {status}"):  # a rerun does not send it again
            run(server, cache, lambda t: t.ask(messages()))
        assert len(server.log) == 1 and len(cache) == 0


def wait_between_requests(server: FaultServer) -> float:
    first, second = sorted(entry.started for entry in server.log)[:2]
    return second - first


@pytest.mark.parametrize("fault, bound, low, high", [
    ("retry_after:0.5", 60.0, 0.5, 1.5),  # honoured: far longer than the 0.01-0.05 s backoff
    ("retry_after:30", 0.3, 0.3, 1.5),  # bounded by retry_after_max_s
    ("retry_after_date:3", 1.0, 0.9, 2.0),  # an HTTP date (1 s resolution), bounded
], ids=["seconds", "bounded", "http-date"])
def test_retry_after_is_honoured_and_bounded(cache, fault, bound, low, high):
    with FaultServer(faults=[fault]) as server:
        reply, stats = run(server, cache, lambda t: t.ask(messages()), retry_after_max_s=bound)
    assert reply.text == DEFAULT_REPLY and stats.retries == {"429": 1}
    assert low <= wait_between_requests(server) < high


def test_a_cached_reply_is_never_requested_again(cache):
    with FaultServer() as server:
        run(server, cache, lambda t: t.ask(messages()))
        reply, stats = run(server, cache, lambda t: t.ask(messages()))
    assert reply.cached and stats.requests == 0 and stats.cache_hits == 1
    assert server.answered() == {prompt_hash(messages()): 1}


def test_the_same_prompt_in_flight_twice_is_paid_once(cache):
    with FaultServer(latency=0.2) as server:
        replies, stats = run(server, cache, lambda t: asyncio.gather(*(t.ask(messages()) for _ in range(5))))
    assert len({r.text for r in replies}) == 1 and stats.requests == 1 and len(server.log) == 1


def test_concurrency_is_bounded(cache):
    with FaultServer(latency=0.15) as server:
        run(server, cache, lambda t: asyncio.gather(*(t.ask(messages(i)) for i in range(8))), concurrency=3)
    assert server.max_in_flight == 3 and len(cache) == 8


def test_regenerations_are_distinct_requests(cache):
    with FaultServer() as server:
        _, stats = run(server, cache, lambda t: asyncio.gather(t.ask(messages(), 0), t.ask(messages(), 1)))
    assert stats.requests == 2 and len(cache) == 2


def test_retries_are_bounded(cache):
    with FaultServer(faults=["500"] * 3) as server, pytest.raises(TeacherError, match="gave up after 3 tries"):
        run(server, cache, lambda t: t.ask(messages()), max_retries=2)
    with FaultServer(faults=["malformed"] * 3) as server, pytest.raises(MalformedReply):
        run(server, cache, lambda t: t.ask(messages()), max_retries=2)
    assert len(cache) == 0


@pytest.mark.parametrize("status", ["401", "404"])
def test_client_errors_are_not_retried(cache, status):
    with FaultServer(faults=[status]) as server, pytest.raises(TeacherError, match=status):
        run(server, cache, lambda t: t.ask(messages()))
    assert len(server.log) == 1


def test_a_server_that_is_down_is_a_clear_error(cache):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = TeacherConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, **FAST)

    async def go():
        async with Teacher(config, cache) as teacher:
            await teacher.ask(messages())

    with pytest.raises(TeacherError, match="gave up after 2 tries.*APIConnectionError"):
        asyncio.run(go())


def test_the_key_comes_from_the_environment_only(cache, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("FACO_TEACHER_API_KEY", raising=False)
    assert api_key("http://127.0.0.1:8000/v1") == "local-no-key"
    with pytest.raises(TeacherError, match="FACO_TEACHER_API_KEY"):
        api_key("https://api.example.com/v1")
    monkeypatch.setenv("FACO_TEACHER_API_KEY", "sk-faco-secret-123")
    with FaultServer() as server:
        run(server, cache, lambda t: t.ask(messages()))
    assert server.log[0].authorization == "Bearer sk-faco-secret-123"
    assert b"sk-faco-secret" not in cache.path.read_bytes()


def test_judging_the_chains():
    assert disagrees("Hmm. *WRONG ANSWER*") and not disagrees("Heat makes water boil.")
    assert names_option("Water boils from heat.", "heat", "ice")
    assert not names_option("Ice crystals make water bubble.", "heat", "ice")
    assert not names_option("The answer is live birth.", "live", "live birth")  # inside the argued option
    assert not names_option("A sheath protects it.", "heat", "ice")  # whole words only


@pytest.mark.parametrize("prompts, reference, argued", [("paper", "a fact ###", "wrong ###"),
                                                      ("faco-v1", "Reference: a fact", "Answer: wrong")])
def test_prompts_carry_the_reference_and_never_the_truth_in_the_false_prompt(prompts, reference, argued):
    true = true_messages("Q?", ("a", "b"), "a", "a fact", prompts)[-1]["content"]
    assert reference in true and "*WRONG ANSWER*" in true
    false = false_messages("Q?", ("right", "wrong"), "wrong", prompts)[-1]["content"]
    assert argued in false and argued.replace("wrong", "right") not in false


def test_prices(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text('{"gpt-x": {"input": 0.5, "output": 1.5}}')
    assert load_prices(path, "gpt-x").cost(1_000_000, 2_000_000) == pytest.approx(3.5)
    path.write_text('{"input": 1, "output": 2}')
    assert load_prices(path, "any") == Prices(1.0, 2.0)
    path.write_text("[]")
    with pytest.raises(TeacherError, match="not a price table"):
        load_prices(path, "any")


# --- prompt sets --------------------------------------------------------------------------------------

OTHER = PromptSet(name="test-set", system=None, true="### Question\n{question}\n### Answer\n{answer}",
                  false="### Question\n{question}\n### Wrong\n{answer}")


def words(text: str) -> str:
    return " ".join(text.split())


def test_the_default_prompt_set_is_appendix_a_word_for_word():
    """Slot for slot the paper's text; only line breaks between its `###` sections differ."""
    assert DEFAULT_PROMPTS == "paper" and TeacherConfig().prompts == "paper" and PAPER.system is None
    assert words(PAPER.true.format(**SLOTS)) == words(APPENDIX_A["true"])
    assert words(PAPER.false.format(**FALSE_SLOTS)) == words(APPENDIX_A["false"])
    sent = true_messages("Q?", ("a", "b"), "a", None)
    assert sent == [{"role": "user", "content": PAPER.true.format(query="Q?\nOptions: a ; b", answer="a",
                                                                 explanation="")}]
    assert "Question ###\nQ?\nOptions: a ; b ###\nGround-truth Answer ###\na ###\n" in sent[0]["content"]


def test_faco_v1_keeps_its_wording_and_the_keys_of_replies_already_paid_for():
    sent = true_messages("Q?", ("a", "b"), "a", None, prompts="faco-v1")
    assert [m["role"] for m in sent] == ["system", "user"]  # faco-v1's layout, so its cached replies still match
    assert sent[-1]["content"].endswith("Question: Q?\nOptions: a ; b\nAnswer: a\n\nStep-by-step explanation:")
    # the key this reply had when faco-v1 was the default (measured then)
    assert cache_key("m", sent, {}, 0, "faco-v1") == "ffe854a04e9fa99d90aa1fc969f29da858d1ac1d431026c1e1ae8f0d9af9a9a1"


def test_a_prompt_set_is_chosen_by_name_and_is_part_of_the_cache_key(cache, monkeypatch):
    monkeypatch.setitem(PROMPT_SETS, OTHER.name, OTHER)
    sent = true_messages("Q?", ("a", "b"), "a", None, prompts="test-set")
    assert sent == [{"role": "user", "content": "### Question\nQ?\n### Answer\na"}]
    assert cache_key("m", sent, {}, 0, "test-set") != cache_key("m", sent, {}, 0, "faco-v1")
    with FaultServer() as server:
        run(server, cache, lambda t: t.ask(sent), prompts="test-set")
        _, stats = run(server, cache, lambda t: t.ask(sent))  # the same text under another set's name is not a hit
    assert stats.requests == 1 and len(cache) == 2
    with pytest.raises(TeacherError, match="unknown prompt set 'nonesuch'; known: paper, faco-v1, test-set"):
        TeacherConfig(prompts="nonesuch")
