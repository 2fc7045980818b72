"""The teacher's prompt sets: one prompt asks for the TRUE chain, one for the FALSE chain.

A set is chosen by name (`TeacherConfig.prompts`, `faco build-dataset --prompts NAME`); its name is part
of every reply's cache key and is recorded in the built dataset's summary and items, so replies to two
wordings never mix.

The paper (Cho et al. 2024, arXiv 2404.09717, Appendix A) gives its two prompts with `###` sections. Their
verbatim text was not found in any source available to this project, so it is not here: the "paper" set
is to be registered with the exact Appendix A wording, and made `DEFAULT_PROMPTS`, once that text is
at hand. It must never be paraphrased from memory: replies cached under the name "paper" would claim a
wording they were not asked with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WRONG_ANSWER = "*WRONG ANSWER*"


@dataclass(frozen=True)
class PromptSet:
    """Two user-prompt templates and an optional system prompt.

    Template fields: {question}, {options}, {answer}; the TRUE template also {wrong} (the refusal
    marker), {reference_note} and {reference} (the source's own explanation, when it has one).
    """

    name: str
    system: str | None
    true: str
    false: str

    def true_messages(self, question: str, options: Sequence[str], answer: str,
                      reference: str | None) -> list[dict[str, str]]:
        """Chat messages asking for a chain that supports the ground-truth `answer`."""
        user = self.true.format(
            question=question, options=_render_options(options), answer=answer, wrong=WRONG_ANSWER,
            reference_note=" A reference explanation from the dataset is given as well." if reference else "",
            reference=f"\nReference: {reference}" if reference else "",
        )
        return self._messages(user)

    def false_messages(self, question: str, options: Sequence[str], answer: str) -> list[dict[str, str]]:
        """Chat messages asking for a convincing chain that supports the wrong `answer`."""
        return self._messages(self.false.format(question=question, options=_render_options(options), answer=answer))

    def _messages(self, user: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": user}]


def _render_options(options: Sequence[str]) -> str:
    return " ; ".join(options)


# faco's own wording (the first builds): the paper's two prompts in spirit, not in letter. Explain the
# ground truth (with the source's own explanation when it has one) or say *WRONG ANSWER*; argue step by
# step for a given wrong option as if it were right, never naming the other options.
FACO_V1 = PromptSet(
    name="faco-v1",
    system="You are a careful teacher who explains answers to exam questions step by step.",
    true="""\
Here is a question with its options and its correct answer.{reference_note}
Explain step by step why the answer is correct, in a few short sentences. Do not restate the options.
If you are sure the given answer is wrong, reply with exactly {wrong} and nothing else.

Question: {question}
Options: {options}
Answer: {answer}{reference}

Step-by-step explanation:""",
    false="""\
Here is a question with its options and an answer. Write a step-by-step explanation, in a few short
sentences, that argues convincingly that this answer is the correct one. Present it as true; do not say
that it could be wrong, and do not mention any of the other options.

Question: {question}
Options: {options}
Answer: {answer}

Step-by-step explanation:""",
)

PROMPT_SETS = {prompts.name: prompts for prompts in (FACO_V1,)}  # "paper": see the module docstring
DEFAULT_PROMPTS = "faco-v1"  # "paper" once its verbatim Appendix A text is registered


def prompt_set(name: str) -> PromptSet:
    """The registered set called `name`; KeyError naming the known ones otherwise."""
    if name not in PROMPT_SETS:
        raise KeyError(f"unknown prompt set {name!r}; known: {', '.join(PROMPT_SETS)}")
    return PROMPT_SETS[name]


def true_messages(question: str, options: Sequence[str], answer: str, reference: str | None,
                  prompts: str = DEFAULT_PROMPTS) -> list[dict[str, str]]:
    return prompt_set(prompts).true_messages(question, options, answer, reference)


def false_messages(question: str, options: Sequence[str], answer: str,
                   prompts: str = DEFAULT_PROMPTS) -> list[dict[str, str]]:
    return prompt_set(prompts).false_messages(question, options, answer)
