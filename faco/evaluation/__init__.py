"""Scoring through lm-eval: the paper's benchmark catalogue (benchmarks, benchmarks.yaml) and its task
files (lm_tasks) and runs (benchmark_runs), HumanEval's offline scorer (humaneval), the world's task files
(world_tasks), the lm-eval runner (runner), groups and chance (groups), contamination checks, and Table 2's
questions (answers) and greedy answers (generation). May import the layers below; never faco.training.
"""
