"""The `faco` command line refuses bad flag values and bad benchmark data with one error naming them,
before anything is loaded, converted or written.

    python -m pytest unit_tests/test_cli.py -q
"""

from __future__ import annotations

import argparse
import json

import pytest

from faco import cli


def subcommands() -> dict[str, argparse.ArgumentParser]:
    commands = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def refused(argv: list[str], capsys) -> str:
    """argparse's error line for `argv` (it exits with 2 before any subcommand runs)."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == cli.EXIT_USAGE
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_every_numeric_flag_has_a_checked_type():
    """A bare int/float type lets 0, -3, nan through to fail deep in a run (or do nothing)."""
    bare = [f"{name} {action.option_strings[0]}" for name, parser in subcommands().items()
            for action in parser._actions if action.type in (int, float)]
    assert bare == []


BAD_NUMBERS = [
    (["evaluate", "m", "--limit", "0"], "argument --limit: expected an integer >= 1, got '0'"),
    (["evaluate", "m", "--limit", "-3"], "argument --limit: expected an integer >= 1, got '-3'"),
    (["evaluate", "m", "--limit", "2.5"], "argument --limit: expected an integer >= 1, got '2.5'"),
    (["evaluate", "m", "--batch-size", "0"], "argument --batch-size: expected an integer >= 1, got '0'"),
    (["evaluate", "m", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["evaluate", "m", "--num-fewshot", "-3"], "argument --num-fewshot: expected a number of shots >= 0 or 'paper'"),
    (["build-dataset", "--out", "x", "--per-source", "0"], "argument --per-source: expected an integer >= 1"),
    (["build-dataset", "--out", "x", "--concurrency", "0"], "argument --concurrency: expected an integer >= 1"),
    (["build-dataset", "--out", "x", "--max-tokens", "-5"], "argument --max-tokens: expected an integer >= 1"),
    (["build-dataset", "--out", "x", "--false-tries", "0"], "argument --false-tries: expected an integer >= 1"),
    (["build-dataset", "--out", "x", "--max-retries", "-1"], "argument --max-retries: expected an integer >= 0"),
    (["build-dataset", "--out", "x", "--timeout", "0"], "argument --timeout: expected a number > 0, got '0'"),
    (["build-dataset", "--out", "x", "--timeout", "nan"], "argument --timeout: expected a number > 0, got 'nan'"),
    (["build-dataset", "--out", "x", "--temperature", "-0.1"], "argument --temperature: expected a number >= 0"),
    (["build-dataset", "--out", "x", "--retry-after-max", "inf"], "argument --retry-after-max: expected a number >= 0"),
]


@pytest.mark.parametrize("argv, message", BAD_NUMBERS, ids=[f"{argv[-2][2:]}={argv[-1]}" for argv, _ in BAD_NUMBERS])
def test_a_bad_number_is_one_error_naming_the_flag(argv, message, capsys):
    line = refused(argv, capsys)
    assert line.startswith(f"faco {argv[0]}: error: {message}"), line


def test_good_numbers_pass_through():
    args = cli.parser().parse_args(["evaluate", "m", "--limit", "1", "--batch-size", "4", "--seed", "0",
                                    "--num-fewshot", "0"])
    assert (args.limit, args.batch_size, args.seed, args.num_fewshot) == (1, 4, 0, 0)
    assert cli.parser().parse_args(["evaluate", "m"]).num_fewshot is None  # "paper": each benchmark's own
    args = cli.parser().parse_args(["build-dataset", "--out", "x", "--temperature", "0", "--timeout", "0.5",
                                    "--max-retries", "0"])
    assert (args.temperature, args.timeout, args.max_retries) == (0.0, 0.5, 0)


def test_bad_benchmark_data_stops_evaluate_before_the_model(tmp_path, capsys):
    """The model named does not exist: the data error comes first, so no model is resolved or converted."""
    rows = tmp_path / "data" / "arc_easy" / "test.jsonl"
    rows.parent.mkdir(parents=True)
    rows.write_text(json.dumps({"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]},
                                "answerKey": "C"}) + "\n")
    code = cli.main(["evaluate", str(tmp_path / "no-such-model"), "--benchmarks", "arc_easy",
                     "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and len(err.strip().splitlines()) == 1, err
    assert f"{rows}: line 1: answer answerKey = 'C' is not among the options ['A', 'B']" in err
