"""One data-parallel lm-eval process, as `accelerate launch` starts it (faco.evaluation.runner.launched):

    python -m faco.evaluation.worker SPEC.json RESULTS.json

lm-eval's `hf` model sees the launch (its Accelerator) and scores every rank's share of the requests;
the first rank gathers them and writes lm-eval's results to RESULTS.json. On a machine without CUDA the
ranks talk over gloo (accelerate's CPU processes).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from faco.evaluation import runner


def main(argv: list[str]) -> None:
    import torch
    from lm_eval.utils import handle_non_serializable

    spec_path, out = (Path(arg) for arg in argv)
    if not torch.cuda.is_available():
        os.environ["ACCELERATE_USE_CPU"] = "1"  # accelerate's gloo processes; else each would run alone
    results = runner.run_in_rank(json.loads(spec_path.read_text()))
    if results is not None:  # the first rank's
        scratch = out.with_suffix(".partial")
        scratch.write_text(json.dumps(results, default=handle_non_serializable))
        scratch.replace(out)


if __name__ == "__main__":
    main(sys.argv[1:])
