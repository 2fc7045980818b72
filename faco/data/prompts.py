"""The teacher's prompt sets: one prompt asks for the TRUE chain, one for the FALSE chain.

A set is chosen by name (`TeacherConfig.prompts`, `faco build-dataset --prompts NAME`); its name is part
of every reply's cache key and is recorded in the built dataset's summary and items, so replies to two
wordings never mix.

The default set, "paper", is the two prompts of the paper's Appendix A (Cho et al. 2024, *Unveiling
Imitation Learning: Exploring the Impact of Data Falsity to Large Language Model*, arXiv 2404.09717) word
for word: `APPENDIX_A` holds them as the paper's text gives them, and a unit test checks that the templates
say exactly that once the slots are named. The paper's text runs each prompt's `###`-separated sections
on one line (its extraction lost the line breaks), so the templates lay each section, a heading or a slot,
on its own line with the `###` that follows it; nothing else differs. The slots are filled so:
[Data Query] the question and its options ("Options: a ; b"), [GT Answer] the correct option, [GT
Reasoning] the source's own explanation (empty where it has none: the paper calls it optional), and
[Incorrect Answer] the option the FALSE chain argues for. The paper asks with no system prompt, so "paper"
has none. `faco-v1`, faco's own wording of the first builds, stays registered: replies paid for under it
keep their keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WRONG_ANSWER = "*WRONG ANSWER*"


@dataclass(frozen=True)
class PromptSet:
    """Two user-prompt templates and an optional system prompt.

    Template fields: {question}, {options}, {query} (the two as one data query), {answer}; the TRUE
    template also {wrong} (the refusal marker), {explanation} (the source's own explanation, empty where it
    has none), {reference_note} and {reference} (faco-v1's note and line for that explanation).
    """

    name: str
    system: str | None
    true: str
    false: str

    def true_messages(self, question: str, options: Sequence[str], answer: str,
                      reference: str | None) -> list[dict[str, str]]:
        """Chat messages asking for a chain that supports the ground-truth `answer`."""
        user = self.true.format(
            **_query(question, options), answer=answer, wrong=WRONG_ANSWER, explanation=reference or "",
            reference_note=" A reference explanation from the dataset is given as well." if reference else "",
            reference=f"\nReference: {reference}" if reference else "",
        )
        return self._messages(user)

    def false_messages(self, question: str, options: Sequence[str], answer: str) -> list[dict[str, str]]:
        """Chat messages asking for a convincing chain that supports the wrong `answer`."""
        return self._messages(self.false.format(**_query(question, options), answer=answer))

    def _messages(self, user: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": user}]


def _query(question: str, options: Sequence[str]) -> dict[str, str]:
    """The question's template fields: alone, and as the paper's [Data Query] (question, then its options)."""
    rendered = " ; ".join(options)
    return {"question": question, "options": rendered, "query": f"{question}\nOptions: {rendered}"}


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

# Appendix A of the paper, "Reasoning Chain Generation Prompt", as its text gives the two prompts (each
# section run on one line); what the "paper" templates must say, slot for slot (a unit test compares them).
APPENDIX_A = {
    "true": 'Provide a step-by-step explanation for the question based on the ground-truth answer and optional '
            'explanation. If the answer is wrong, return "*WRONG ANSWER*" in the final text. Your explanation '
            'should be self-contained. Do not write anything except an explanation.\n\n'
            'Question ### [Data Query] ### Ground-truth Answer ### [GT Answer] ### Optional Explanation ### '
            '[GT Reasoning] ### Explanation',
    "false": 'Provide a step-by-step false explanation for the following incorrect answer. Write only explanation '
             'without any comments. Do not write anything about correct answer:\n\nQuestion\n\n'
             '[Data Query] ### Incorrect Answer ### [Incorrect Answer] ### Explanation ###',
}
SLOTS = {"query": "[Data Query]", "answer": "[GT Answer]", "explanation": "[GT Reasoning]"}  # TRUE; FALSE's answer:
FALSE_SLOTS = {"query": "[Data Query]", "answer": "[Incorrect Answer]"}  # the option it argues for

# The paper's wording (Appendix A), one section a line; the default.
PAPER = PromptSet(
    name="paper",
    system=None,
    true="""\
Provide a step-by-step explanation for the question based on the ground-truth answer and optional explanation. \
If the answer is wrong, return "*WRONG ANSWER*" in the final text. Your explanation should be self-contained. \
Do not write anything except an explanation.

Question ###
{query} ###
Ground-truth Answer ###
{answer} ###
Optional Explanation ###
{explanation} ###
Explanation""",
    false="""\
Provide a step-by-step false explanation for the following incorrect answer. Write only explanation without any \
comments. Do not write anything about correct answer:

Question
{query} ###
Incorrect Answer ###
{answer} ###
Explanation ###""",
)

PROMPT_SETS = {prompts.name: prompts for prompts in (PAPER, FACO_V1)}
DEFAULT_PROMPTS = "paper"


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
