"""faco.evaluation.worker with lm-eval's data-parallel split opened on a CPU, for the test that two gloo
processes score as one (test_eval_engine.py).

lm-eval's `hf` model splits the requests over the launched ranks only where `torch.cuda.device_count() > 1`
(lm_eval/models/huggingface.py); on a machine without CUDA every rank would stay rank 0 of 1 and score
everything. Reporting one device per rank lets the same code path run over gloo; each rank appends
"rank world_size" as lm-eval's model sees them to the file $FACO_TEST_RANKS, so the test sees the split.

    accelerate launch --multi_gpu --num_processes 2 -m cpu_ranks SPEC.json RESULTS.json
"""

import os
import sys

import torch
from lm_eval.models.huggingface import HFLM

from faco.evaluation import worker

torch.cuda.device_count = lambda: int(os.environ["WORLD_SIZE"])
_init = HFLM.__init__


def _noted_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    with open(os.environ["FACO_TEST_RANKS"], "a") as out:
        out.write(f"{self.rank} {self.world_size}\n")


HFLM.__init__ = _noted_init

if __name__ == "__main__":
    worker.main(sys.argv[1:])
