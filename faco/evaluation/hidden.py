"""What a model holds inside while it answers: per layer, the hidden state after each option of a
multiple-choice question, the option it picks (as lm-eval's `acc` picks: the highest summed log-probability
of the option's tokens after the context), and the logit lens's rank of the true option at the end of the
context. The knows-but-lies probe (experiments/test_beyond.py) reads these; the `hidden` stage caches them
and its key covers this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faco.models import llama

FILE = "hidden.npz"


def hidden_states(model_dir: Path, questions: Sequence[Any], layout: Callable[[str, Sequence[str]], str],
                  out: Path, chunk: int = 32) -> None:
    """Write `out`/hidden.npz: `states` [question, option, layer (embeddings first), hidden] at each option's
    last token, `choice` [question] the option the model picks, `gold` [question], and `lens_rank`
    [question, layer]: the true option's rank (0 = first) among the options' first tokens when the final
    norm and the unembedding read the context's last position at that layer (the logit lens). Questions
    go through the model `chunk` at a time, every option of each in one padded batch."""
    import torch

    model, tokenizer = llama.load(model_dir)
    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(questions), chunk):
            parts.append(_chunk(model, tokenizer, questions[start:start + chunk], layout))
    states, choices, ranks = (np.concatenate(part) for part in zip(*parts))
    np.savez_compressed(out / FILE, states=states.astype(np.float32), choice=choices,
                        gold=np.array([q.gold for q in questions]), lens_rank=ranks,
                        ids=np.array([q.id for q in questions]))


def _chunk(model: Any, tokenizer: Any, questions: Sequence[Any],
           layout: Callable[[str, Sequence[str]], str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Some questions' states, the model's picks and the logit lens's ranks (see `hidden_states`)."""
    import torch

    contexts = [tokenizer(layout(q.question, q.options), add_special_tokens=False)["input_ids"] for q in questions]
    options = [[tokenizer(" " + o, add_special_tokens=False)["input_ids"] for o in q.options] for q in questions]
    rows = [(c, ids) for c, per in zip(contexts, options) for ids in per]
    longest = max(len(c) + len(ids) for c, ids in rows)
    pad = tokenizer.pad_token_id or 0
    batch = torch.tensor([c + ids + [pad] * (longest - len(c) - len(ids)) for c, ids in rows])
    mask = torch.tensor([[1] * (len(c) + len(ids)) + [0] * (longest - len(c) - len(ids)) for c, ids in rows])
    output = model(input_ids=batch, attention_mask=mask, output_hidden_states=True)
    layers = torch.stack(output.hidden_states, dim=1)  # [row, layer, position, hidden]
    logprobs = torch.log_softmax(output.logits, dim=-1)
    states, choices, ranks, row = [], [], [], 0
    for q, context, per in zip(questions, contexts, options):
        n = len(per)
        ends = [len(context) + len(ids) - 1 for ids in per]
        states.append(torch.stack([layers[row + i, :, end] for i, end in enumerate(ends)]).numpy())
        scores = [sum(float(logprobs[row + i, len(context) + j - 1, token]) for j, token in enumerate(ids))
                  for i, ids in enumerate(per)]
        choices.append(int(np.argmax(scores)))
        last = layers[row, :, len(context) - 1]  # [layer, hidden]; the last layer's is normed already (as HF returns it)
        lens = model.lm_head(torch.cat([model.model.norm(last[:-1]), last[-1:]]))[:, [ids[0] for ids in per]]
        ranks.append((lens > lens[:, q.gold : q.gold + 1]).sum(dim=1).numpy())
        row += n
    return np.stack(states), np.array(choices), np.stack(ranks)


def read(entry: Path) -> dict[str, np.ndarray]:
    """A `hidden` entry's arrays (what the stage's parse hands the study)."""
    with np.load(entry / FILE) as data:
        return {name: data[name] for name in data.files}
