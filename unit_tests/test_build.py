"""Building the dataset: drops and their reasons, the written dataset, dry runs, the CLI, kill + restart.

A loopback fault server plays the teacher, with replies scripted from the prompt, so every drop rule is
exercised on purpose; the kill test runs `faco build-dataset` in a subprocess, kills it (-9) mid-build
and restarts it, then checks that no answered prompt was requested again and no paid reply was lost.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_server import FaultServer, prompt_hash

from faco.data.build import BuildConfig, build_dataset, dry_run, load_dataset_items, plan
from faco.cli import main
from faco.data.items import ItemError, instruction_example
from faco.data.sources import SOURCES, SourceError
from faco.data.prompts import PROMPT_SETS, WRONG_ANSWER
from faco.data.teacher import TeacherConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED = Path(os.environ.get("FACO_SHARED_DIR", Path(__file__).resolve().parents[1].parent / "shared")) / "datasets"
REPO = Path(__file__).resolve().parents[1]
FAST = {"timeout_s": 5.0, "backoff_s": 0.01, "backoff_max_s": 0.05}


def quartz_like(path: Path, count: int) -> Path:
    """`count` two-option rows in the original QuaRTz layout; question i has options up<i> / down<i>."""
    rows = [{"id": f"q{i}", "question": {"stem": f"Rule {i}: more heat, what happens?", "choices": [
        {"label": "A", "text": f"up{i}"}, {"label": "B", "text": f"down{i}"}]}, "answerKey": "A", "para": "Heat rises."}
            for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def scripted_teacher():
    """Rule 0: the teacher disagrees; rule 1: every FALSE chain names the truth; rule 2: the first one does."""
    false_asked: dict[int, int] = {}

    def reply(messages: list[dict[str, str]]) -> str:
        prompt = messages[-1]["content"]
        rule = int(prompt.split("Rule ")[1].split(":")[0])
        if WRONG_ANSWER in prompt:  # the TRUE prompt (every set's asks for the refusal marker)
            return "*WRONG ANSWER*" if rule == 0 else f"Heat pushes it up, so up{rule}."
        false_asked[rule] = false_asked.get(rule, 0) + 1
        if rule == 1 or (rule == 2 and false_asked[rule] == 1):
            return f"It goes up{rule}, I mean down{rule}."
        return f"Cold wins, so down{rule}."

    return reply


def config(tmp_path: Path, **changes) -> BuildConfig:
    defaults = {"out": tmp_path / "faco", "sources": ("quartz",),
                "source_paths": {"quartz": quartz_like(tmp_path / "train.jsonl", 5)},
                "reply_cache": tmp_path / "replies.sqlite"}
    return BuildConfig(**{**defaults, **changes})


def test_drops_are_counted_per_reason_and_items_round_trip(tmp_path):
    build = config(tmp_path)
    with FaultServer(reply=scripted_teacher()) as server:
        teacher = TeacherConfig(base_url=server.url, model="fault", false_tries=2, **FAST)
        summary = build_dataset(build, teacher, progress=False)
    quartz = summary["per_source"]["quartz"]
    assert quartz["items"] == 3 and quartz["dropped"] == {"teacher_disagrees": 1, "false_names_correct": 1}
    assert summary["requests"]["sent"] == 1 + 3 + 3 + 2 * 2  # rule 0: TRUE only; rules 1, 2: TRUE + 2 FALSE
    assert [i.provenance["false_tries"] for i in load_dataset_items(build.out)] == [2, 1, 1]
    assert summary["tokens"]["completion"] > 0 and summary["teacher"]["prompt_version"] == "paper"  # the default set

    items = load_dataset_items(build.out)
    assert [i.id for i in items] == ["quartz-train-2", "quartz-train-3", "quartz-train-4"]
    for item in items:
        assert item.answer(True) == item.options[0] and item.answer(False) == item.options[1]
        assert "down" in item.false_explanation and item.source_explanation == "Heat rises."
        assert item.provenance["teacher_model"] == "fault" and item.provenance["split"] == "train"
        assert item.provenance["prompt_version"] == "paper"
        prompt, response = instruction_example(item, truth=False)  # what training consumes
        assert item.options[1] in response and item.false_explanation in response
    dropped = [json.loads(line) for line in (build.out / "dropped.jsonl").read_text().splitlines()]
    assert sorted((d["reason"], d["id"]) for d in dropped) == [
        ("false_names_correct", "quartz-train-1"), ("teacher_disagrees", "quartz-train-0")]


def test_a_rejected_item_is_dropped_with_its_reason_and_never_sent_again(tmp_path):
    build = config(tmp_path)
    with FaultServer(faults=["413"], reply=scripted_teacher()) as server:  # the first request: rule 0's TRUE
        teacher = TeacherConfig(base_url=server.url, model="fault", concurrency=1, false_tries=2, **FAST)
        first = build_dataset(build, teacher, progress=False)
        sent = len(server.log)
        again = build_dataset(build, teacher, progress=False)
    assert first["dropped"] == {"teacher_rejected": 1, "false_names_correct": 1} and first["items"] == 3
    # rule 0: its rejected TRUE only; rules 1-4: TRUE; rules 1, 2: two FALSE each; rules 3, 4: one
    assert first["requests"]["rejected"] == 1 and sent == first["requests"]["sent"] == 1 + 4 + 2 * 2 + 2
    assert again["requests"]["sent"] == 0 and len(server.log) == sent and again["dropped"] == first["dropped"]
    dropped = [json.loads(line) for line in (build.out / "dropped.jsonl").read_text().splitlines()]
    rejected = next(d for d in dropped if d["reason"] == "teacher_rejected")
    assert rejected["id"] == "quartz-train-0" and rejected["status"] == 413 and "413" in rejected["error"]


def test_code_items_take_their_false_answer_from_another_item(tmp_path):
    rows = [{"text": f"task {i}", "code": f"def f{i}(): return {i}", "task_id": i, "test_list": []} for i in range(4)]
    path = tmp_path / "mbpp.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    build = config(tmp_path, sources=("mbpp",), source_paths={"mbpp": path})
    with FaultServer() as server:
        summary = build_dataset(build, TeacherConfig(base_url=server.url, model="fault", **FAST), progress=False)
    assert summary["requests"]["sent"] == 0 and summary["items"] == 4
    codes = {f"def f{i}(): return {i}" for i in range(4)}
    for item in load_dataset_items(build.out):
        assert item.options[0] != item.options[1] and set(item.options) <= codes
        assert item.provenance["false_from"] != item.id


def test_dry_run_counts_requests_not_yet_cached(tmp_path):
    build = config(tmp_path)
    teacher = TeacherConfig(base_url="http://127.0.0.1:9/v1", model="fault", max_tokens=100)
    from faco.data.teacher import Prices

    estimate = dry_run(build, teacher, Prices(1.0, 2.0))
    assert estimate["requests"] == estimate["to_send"] == 10 and estimate["cached"] == 0
    assert estimate["estimated_completion_tokens_max"] == 1000 and estimate["estimated_cost_max"] > 0
    with FaultServer(reply=scripted_teacher()) as server:
        build_dataset(build, TeacherConfig(base_url=server.url, model="fault", max_tokens=100, **FAST), progress=False)
    assert dry_run(build, teacher)["to_send"] == 1  # rule 0 was dropped before its FALSE request


def test_not_a_faco_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ItemError, match="not a FACO dataset"):
        load_dataset_items(tmp_path)
    with pytest.raises(SourceError, match="unknown source 'squad'"):
        BuildConfig(out=tmp_path, sources=("squad",))


@pytest.mark.parametrize("damaged, message", [
    ("dataset_info.json", "not valid JSON, truncated or damaged"),
    ("state.json", "not valid JSON, truncated or damaged"),
    ("summary.json", "not valid JSON, truncated or damaged"),
    ("data-00000-of-00001.arrow", "not a readable Arrow file, truncated or damaged"),
])
def test_a_damaged_dataset_file_is_one_error_naming_it(tmp_path, damaged, message):
    build = config(tmp_path)
    with FaultServer(reply=scripted_teacher()) as server:
        build_dataset(build, TeacherConfig(base_url=server.url, model="fault", **FAST), progress=False)
    file = build.out / damaged
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(ItemError, match=re.escape(f"{file}: {message}")):
        load_dataset_items(build.out)
    file.unlink()
    with pytest.raises(ItemError, match=re.escape(str(file))):
        load_dataset_items(build.out)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no dataset samples at {SHARED}")
def test_plan_on_the_samples_covers_all_nine_sources_seeded():
    first, loading = plan(BuildConfig(out=Path("unused"), data_dir=SHARED, per_source=5, seed=0))
    again, _ = plan(BuildConfig(out=Path("unused"), data_dir=SHARED, per_source=5, seed=0))
    other, _ = plan(BuildConfig(out=Path("unused"), data_dir=SHARED, per_source=5, seed=1))
    assert {p.item.source for p in first} == set(SOURCES) and all(v["sampled"] == 5 for v in loading.values())
    assert first == again and [p.item.id for p in first] != [p.item.id for p in other]
    assert all(p.false_option != p.item.correct for p in first)


# --- the CLI --------------------------------------------------------------------------------------

def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "dev.jsonl"
    bad.write_text('{"sentence": "A _", "option1": "x", "option2": "y", "answer": "7"}\n')
    cases = [
        (["--sources", "squad"], "unknown source 'squad'"),
        (["--sources", "winogrande", "--source-path", f"winogrande={bad}"], "dev.jsonl: line 1: field 'answer'"),
        (["--sources", "quartz", "--source-path", f"quartz={quartz_like(tmp_path / 'q.jsonl', 1)}",
          "--base-url", "http://127.0.0.1:9/v1", "--max-retries", "0"], "gave up after 1 tries"),
    ]
    for flags, message in cases:
        code = main(["build-dataset", "--out", str(tmp_path / "out"), "--no-progress",
                     "--reply-cache", str(tmp_path / "r.sqlite"), *flags])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("prompts", sorted(PROMPT_SETS))
def test_cli_dry_run_then_build(tmp_path, capsys, prompts):
    path = quartz_like(tmp_path / "train.jsonl", 5)
    prices = tmp_path / "prices.json"
    prices.write_text('{"input": 0.5, "output": 1.5}')
    asked, script = [], scripted_teacher()
    with FaultServer(reply=lambda messages: asked.append(messages) or script(messages)) as server:
        flags = ["build-dataset", "--sources", "quartz", "--source-path", f"quartz={path}", "--out",
                 str(tmp_path / "out"), "--base-url", server.url, "--model", "fault", "--prices", str(prices),
                 "--reply-cache", str(tmp_path / "r.sqlite"), "--no-progress", "--false-tries", "1",
                 "--prompts", prompts]
        assert main([*flags, "--dry-run"]) == 0 and not server.log
        estimate = json.loads(capsys.readouterr().out)
        assert estimate["to_send"] == 10 and estimate["prompt_version"] == prompts
        with pytest.raises(SystemExit) as refused:
            main([*flags, "--prompts", "nonesuch"])  # not registered
        assert refused.value.code == 2 and "invalid choice: 'nonesuch'" in capsys.readouterr().err
        assert main(flags) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["items"] == 2 and summary["cost"]["dataset"] > 0  # one FALSE try: rule 2 is dropped too
    openings = {PROMPT_SETS[prompts].true[:40], PROMPT_SETS[prompts].false[:40]}  # every request in the set's words
    assert asked and {messages[-1]["content"][:40] for messages in asked} == openings


# --- kill -9 mid-build, restart --------------------------------------------------------------------

def cached_prompts(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        try:
            return {prompt_hash(json.loads(row[0])) for row in db.execute("SELECT messages FROM replies")}
        except sqlite3.OperationalError:  # the build has not created the table yet
            return set()


@pytest.mark.slow  # two build processes (~10 s)
def test_kill_and_restart_loses_nothing_paid_and_pays_nothing_twice(tmp_path):
    rows, concurrency = 20, 2
    data = quartz_like(tmp_path / "train.jsonl", rows)
    cache = tmp_path / "replies.sqlite"
    with FaultServer(latency=0.15) as server:  # the default reply never names an option: no regenerations
        command = [sys.executable, "-m", "faco.cli", "build-dataset", "--sources", "quartz", "--source-path",
                   f"quartz={data}", "--out", str(tmp_path / "out"), "--base-url", server.url, "--model", "fault",
                   "--concurrency", str(concurrency), "--reply-cache", str(cache), "--no-progress"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        build = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while len(cached_prompts(cache)) < 12 and time.time() < deadline:
            assert build.poll() is None, build.stderr.read().decode()
            time.sleep(0.05)
        build.send_signal(signal.SIGKILL)
        build.wait()
        time.sleep(0.5)  # let requests in flight at the kill finish on the server: their replies are the lost ones
        before_kill = cached_prompts(cache)
        answered_before = server.answered()
        first_run = len(server.log)
        assert 12 <= len(before_kill) < 2 * rows, "killed too late to test a restart"

        restart = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert restart.returncode == 0, restart.stderr
        after_restart = server.log[first_run:]

    assert not [e for e in after_restart if e.prompt in before_kill]  # nothing answered and cached is asked again
    assert before_kill <= cached_prompts(cache)  # nothing paid is lost
    lost_in_flight = set(answered_before) - before_kill  # answered as the kill hit, never committed
    assert len(lost_in_flight) <= concurrency
    assert sum(n > 1 for n in server.answered().values()) <= len(lost_in_flight)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["items"] == rows and summary["requests"]["cache_hits"] >= len(before_kill)
    print(f"kill+restart: {len(before_kill)} replies cached at the kill, 0 re-requested, 0 lost; "
          f"{len(lost_in_flight)} in flight at the kill re-requested; restart sent {len(after_restart)}")
