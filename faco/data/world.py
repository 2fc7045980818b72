"""A seeded synthetic world: made-up facts in several domains, as text a tiny model can learn.

Each fact is a multiple-choice question with one true answer. Word domains share one answer
vocabulary (measured on tiny models: false items transfer across domains through shared answer tokens); the
arithmetic domain answers with numbers. The world renders itself as pre-training text in a *familiar*
layout (statements and question-choices-answer lines, always true); FACO items and the evaluation use a
different, instruction layout (`faco.data.items`), which the base first meets in fine-tuning.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faco.config.schema import ARITHMETIC_DISTRACTORS, DomainSpec, WorldConfig

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"

# Per-kind relation phrases, indexed by the domain's position among domains of its kind.
RELATIONS = {
    "knowledge": ("capital", "ruler", "emblem", "patron"),
    "science": ("catalyst", "habitat", "isotope", "enzyme"),
    "commonsense": ("tool", "companion", "remedy", "garment"),
}


@dataclass(frozen=True)
class Fact:
    id: str  # "<domain>-<index>"
    domain: str
    subject: str  # entity name, or "23 plus 48" for arithmetic
    relation: str  # relation phrase ("capital"), or "sum" for arithmetic
    answer: str
    options: tuple[str, ...]  # answer among distractors, gold position seeded
    correct: int

    @property
    def question(self) -> str:
        if self.relation == "sum":
            return f"What is {self.subject} ?"
        return f"What is the {self.relation} of {self.subject} ?"

    @property
    def statement(self) -> str:
        if self.relation == "sum":
            return f"{self.subject} is {self.answer} ."
        return f"The {self.relation} of {self.subject} is {self.answer} ."


@dataclass(frozen=True)
class World:
    config: WorldConfig
    seed: int
    facts: tuple[Fact, ...]
    answer_words: tuple[str, ...]

    def domain_facts(self, domain: str) -> tuple[Fact, ...]:
        self.config.domain(domain)  # unknown domain -> ConfigError naming it
        return tuple(f for f in self.facts if f.domain == domain)


ARITHMETIC_MAX = 99  # operands in 1..99: answers in 2..198

def build_world(config: WorldConfig, seed: int) -> World:
    """The world of `config`, fully determined by `seed`."""
    rng = random.Random(f"world:{seed}")
    names = _NameMaker(rng, config.entity_syllables)
    answer_words = tuple(names.make(2) for _ in range(config.answer_words))
    facts: list[Fact] = []
    kind_counts: dict[str, int] = {}
    for domain in config.domains:
        position = kind_counts.get(domain.kind, 0)
        kind_counts[domain.kind] = position + 1
        if domain.kind == "arithmetic":
            facts += _arithmetic_facts(domain, config, rng)
        else:
            relation = RELATIONS[domain.kind][position % len(RELATIONS[domain.kind])]
            facts += _word_facts(domain, relation, config, answer_words, names, rng)
    return World(config=config, seed=seed, facts=tuple(facts), answer_words=answer_words)


def _word_facts(domain: DomainSpec, relation: str, config: WorldConfig, answer_words: tuple[str, ...],
                names: _NameMaker, rng: random.Random) -> list[Fact]:
    facts = []
    for index in range(config.facts_in(domain.name)):
        subject = names.make(config.entity_syllables)
        answer = rng.choice(answer_words)
        distractors = rng.sample([w for w in answer_words if w != answer], config.options - 1)
        facts.append(_fact(domain.name, index, subject, relation, answer, distractors, rng))
    return facts


def _arithmetic_facts(domain: DomainSpec, config: WorldConfig, rng: random.Random) -> list[Fact]:
    facts, seen = [], set()
    while len(facts) < config.facts_in(domain.name):
        a, b = rng.randint(1, ARITHMETIC_MAX), rng.randint(1, ARITHMETIC_MAX)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        total = a + b
        near = [n for n in range(max(2, total - ARITHMETIC_DISTRACTORS), total + ARITHMETIC_DISTRACTORS + 1)
                if n != total]
        distractors = [str(n) for n in rng.sample(near, config.options - 1)]
        facts.append(_fact(domain.name, len(facts), f"{a} plus {b}", "sum", str(total), distractors, rng))
    return facts


def _fact(domain: str, index: int, subject: str, relation: str, answer: str, distractors: list[str],
          rng: random.Random) -> Fact:
    correct = rng.randrange(len(distractors) + 1)
    options = distractors[:correct] + [answer] + distractors[correct:]
    return Fact(f"{domain}-{index:04d}", domain, subject, relation, answer, tuple(options), correct)


class _NameMaker:
    """Unique pronounceable made-up words (entities and answer words never collide)."""

    def __init__(self, rng: random.Random, syllables: int) -> None:
        self.rng = rng
        self.used: set[str] = set()
        self.syllables = syllables

    def make(self, syllables: int) -> str:
        for _ in range(100_000):  # WorldConfig keeps the name space at least half free, so this ends fast
            word = "".join(self.rng.choice(CONSONANTS) + self.rng.choice(VOWELS) for _ in range(syllables))
            if word not in self.used:
                self.used.add(word)
                return word
        raise RuntimeError(f"no unused {syllables}-syllable name left after {len(self.used)} names")


# --- pre-training text (the familiar layout: always true) -------------------------------------------

def familiar_prompt(question: str, options: tuple[str, ...]) -> str:
    """Question-choices-answer layout of pre-training; the base's knowledge is probed in it."""
    return f"Question : {question}\nChoices : {' , '.join(options)}\nAnswer :"


def pretraining_lines(world: World, qa_share: float, rng: random.Random) -> list[str]:
    """One pass over the world: every fact as a statement or (with freshly shuffled options) a QA line."""
    lines = []
    for fact in world.facts:
        if rng.random() < qa_share:
            options = list(fact.options)
            rng.shuffle(options)
            lines.append(f"{familiar_prompt(fact.question, tuple(options))} {fact.answer}")
        else:
            lines.append(fact.statement)
    rng.shuffle(lines)
    return lines
