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
                  out: Path) -> None:
    """Write `out`/hidden.npz: `states` [question, option, layer (embeddings first), hidden] at each option's
    last token, `choice` [question] the option the model picks, `gold` [question], and `lens_rank`
    [question, layer]: the true option's rank (0 = first) among the options' first tokens when the final
    norm and the unembedding read the context's last position at that layer (the logit lens)."""
    import torch

    model, tokenizer = llama.load(model_dir)
    model.eval()
    states, choices, ranks = [], [], []
    with torch.no_grad():
        for q in questions:
            state, choice, rank = _question(model, tokenizer, layout(q.question, q.options), q.options, q.gold)
            states.append(state)
            choices.append(choice)
            ranks.append(rank)
    np.savez_compressed(out / FILE, states=np.stack(states).astype(np.float32), choice=np.array(choices),
                        gold=np.array([q.gold for q in questions]), lens_rank=np.stack(ranks),
                        ids=np.array([q.id for q in questions]))


def _question(model: Any, tokenizer: Any, context: str, options: Sequence[str],
              gold: int) -> tuple[np.ndarray, int, np.ndarray]:
    """One question's states, the model's pick and the logit lens's ranks (see `hidden_states`)."""
    import torch

    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    option_ids = [tokenizer(" " + option, add_special_tokens=False)["input_ids"] for option in options]
    longest = max(len(context_ids) + len(ids) for ids in option_ids)
    pad = tokenizer.pad_token_id or 0
    batch = torch.tensor([context_ids + ids + [pad] * (longest - len(context_ids) - len(ids)) for ids in option_ids])
    mask = torch.tensor([[1] * (len(context_ids) + len(ids)) + [0] * (longest - len(context_ids) - len(ids))
                         for ids in option_ids])
    output = model(input_ids=batch, attention_mask=mask, output_hidden_states=True)
    layers = torch.stack(output.hidden_states, dim=1)  # [option, layer, position, hidden]
    ends = [len(context_ids) + len(ids) - 1 for ids in option_ids]
    state = torch.stack([layers[i, :, end] for i, end in enumerate(ends)]).numpy()
    logprobs = torch.log_softmax(output.logits, dim=-1)
    scores = [sum(float(logprobs[i, len(context_ids) + j - 1, token]) for j, token in enumerate(ids))
              for i, ids in enumerate(option_ids)]
    last = layers[0, :, len(context_ids) - 1]  # [layer, hidden]; the last layer's is normed already (as HF returns it)
    lens = model.lm_head(torch.cat([model.model.norm(last[:-1]), last[-1:]]))  # [layer, vocab]
    firsts = lens[:, [ids[0] for ids in option_ids]]  # [layer, option]
    rank = (firsts > firsts[:, gold : gold + 1]).sum(dim=1).numpy()
    return state, int(np.argmax(scores)), rank


def read(entry: Path) -> dict[str, np.ndarray]:
    """A `hidden` entry's arrays (what the stage's parse hands the study)."""
    with np.load(entry / FILE) as data:
        return {name: data[name] for name in data.files}
