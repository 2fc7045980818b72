"""faco: the FACO study (how false instruction data harms language models) as a pytest suite.

The package follows the study's data flow, one subpackage per part, and imports run one way: a module
imports only from its own layer or the layers before it in LAYERS (unit_tests/test_layout.py checks it,
function-local imports included). The cache keys follow the same imports (faco.core.cache), so the order
is also what an edit invalidates: an edit of the report invalidates nothing, one of the trainer every
checkpoint.
"""

from faco.core import numerics as _numerics  # noqa: F401 - pins CPU numerics before torch loads (see faco.core.numerics)

LAYERS: tuple[tuple[str, ...], ...] = (
    ("faco.core",),  # errors-free basics: numerics, the cache and its keys, digests, process lifetime, logs
    ("faco.config",),  # the schema: typed dataclasses, importing nothing of faco but faco.core
    ("faco.models",),  # the model interface; checkpoints from a directory, the hub or a GGUF file; serving one
    ("faco.data",),  # the world, FACO items, corruption, sources, the teacher, built datasets
    ("faco.training",),  # pre-training, fine-tuning (Trainer), launched processes
    ("faco.evaluation",),  # the benchmark catalogue, lm-eval task files and runs, HumanEval, Table 2 answers
    ("faco.config.load",),  # presets from TOML, overrides; names checked against the source and benchmark lists
    ("faco.study",),  # the table of stages, the study that walks it, seeds, the jobs that build it (execution), sweeps, costs
    ("faco.findings",),  # the findings registry, statistics, stored records, baselines and tolerances
    ("faco.report",),  # the HTML report and its figures
    ("faco.plugin", "faco.cli"),  # the pytest plugin and the command line
)
