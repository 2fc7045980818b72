"""Table 2's answers: what a model *says* to a question, greedily, in the instruction format its FACO
items taught. The answers stage's key covers this module; which questions are asked is the experiment's
choice (faco.evaluation.answers) and part of the stage's config. On a GPU the model generates there, in
the evaluation's dtype (bfloat16 unless the preset says otherwise); on the CPU in float32, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faco.data.items import instruction_prompt


def generate(model_dir: Path, questions: Sequence[dict[str, Any]], chat: bool, max_new_tokens: int,
             dtype: str = "float32") -> list[str]:
    """Greedy answers of the model at `model_dir`, one per question, prompt as in fine-tuning (`chat`: the
    chat template where the tokenizer has one, as faco.training.trainer renders examples); the weights in
    `dtype`, on the GPU when there is one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype),
                                                 device_map="cuda" if device == "cuda" else None)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model.eval()
    room = getattr(model.config, "max_position_embeddings", None)
    answers = []
    for q in questions:
        prompt = instruction_prompt(q["question"], q["options"])
        if chat and tokenizer.chat_template:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                tokenize=True, return_dict=False)
        else:
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        new_tokens = max_new_tokens if room is None else min(max_new_tokens, room - len(ids))
        if new_tokens <= 0:  # a tiny model's context is full already: no answer rather than a crash
            answers.append("")
            continue
        with torch.no_grad():
            output = model.generate(torch.tensor([ids], device=device),
                                    attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                                    max_new_tokens=new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        answers.append(tokenizer.decode(output[0, len(ids):], skip_special_tokens=True).strip())
    return answers
