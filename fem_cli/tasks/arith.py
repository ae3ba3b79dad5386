"""`arith`, `arith_hard`: built-in, procedurally generated multi-step arithmetic word problems.

The embedded offline default: no download, and reasoning helps (each problem takes two steps, and
the distractors are the results of the usual slips), so EM has something to learn even for a
135M-parameter model. (Version 1 also multiplied, "packs of k", over up to three steps: too hard
for SmolLM2-135M, whose hinted rationales then taught a favourite label, not the arithmetic.)
Generation is seeded per split, so every machine gets the same questions; a question text never
appears in two splits.

How one problem is made: a person starts with 2-20 of some item, then two operations follow, each
adding (buys/finds/is given) or taking away (gives away/loses/uses up) 1-9 of them, never going
below one. The answer is the final count;
three distractors come from (a) dropping the last step, (b) applying the last step the wrong way
round, (c) an off-by-one or off-by-ten slip, replaced by nearby numbers when they coincide.
The four choices are shuffled; labels A-D.

`arith_hard` is the same kind of problem, for models that nearly solve `arith` (Qwen2.5-Coder-0.5B
gets 80 % of it): the person starts with 10-60, three operations follow, adding or taking away
5-40, or multiplying: buying k packs of m (2-6 packs of 3-12; the slip: adding k + m) or the count
doubling/tripling (the slip: adding 2 or 3). Same distractor recipe, its own seeded stream.

The generator knows every step, so each question also has a worked solution (`solution`,
`solution_hard`: the reference sampler's text): one line per step with its numbers, then the
result, the label it is shown under, and the answer line, in the format of the prompt's worked
example (arith_hard's train question 2):

    Ben has 40 marbles.
    Ben finds 31 more: 40 + 31 = 71.
    The number triples: 71 x 3 = 213.
    Ben buys 6 packs of 9: 6 x 9 = 54, and 213 + 54 = 267.
    So Ben has 267 marbles, which is choice D.
    Answer: D

    load_questions("arith", "train")  # 2000 questions
"""

from __future__ import annotations

import dataclasses
import functools
import random
from typing import NamedTuple

from fem_cli.errors import FemError
from fem_cli.prompts import answer_line
from fem_cli.records import Question

SPLIT_SIZES = {"train": 2000, "validation": 200, "test": 500}
LABELS = ("A", "B", "C", "D")
_VERSION = 2  # bump when the generator changes: different questions, new ids

_NAMES = ("Ava", "Ben", "Chloe", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena", "Mia", "Noor", "Omar", "Pia")
_ITEMS = ("apples", "marbles", "stickers", "coins", "books", "pencils", "shells", "cards", "stamps", "cookies")


@dataclasses.dataclass(frozen=True)
class Setting:
    """How hard the problems of one task are; `name` and `version` make its ids and its seed."""

    name: str
    version: int  # bump when the generator changes: different questions, new ids
    start: tuple[int, int]  # the first count, inclusive range
    steps: int
    amount: tuple[int, int]  # what one step adds or takes away, inclusive range
    multiply: bool  # also "buys k packs of m" and "doubles/triples"


ARITH = Setting("arith", _VERSION, start=(2, 20), steps=2, amount=(1, 9), multiply=False)
ARITH_HARD = Setting("arith_hard", 1, start=(10, 60), steps=3, amount=(5, 40), multiply=True)


class _Step(NamedTuple):
    sentence: str  # as the question says it
    count: int  # the count after it
    wrong_way: int  # the count if done the wrong way round
    working: str  # how the solution works it out, with the numbers


def _step(rng: random.Random, name: str, count: int, item: str, setting: Setting) -> _Step:
    """One operation, drawn from `rng`."""
    low, high = setting.amount
    # `arith` draws exactly as version 2 did (one random() per step), so its questions stay the same.
    if setting.multiply and rng.random() < 0.4:
        if rng.random() < 0.5:
            packs, size = rng.randint(2, 6), rng.randint(3, 12)
            bought = packs * size
            return _Step(
                f"Then {name} buys {packs} packs of {size} {item}.", count + bought, count + packs + size,
                f"{name} buys {packs} packs of {size}: {packs} x {size} = {bought}, and {count} + {bought} = {count + bought}.",
            )
        factor, verb = rng.choice(((2, "doubles"), (3, "triples")))
        return _Step(
            f"Then the number of {item} {name} has {verb}.", count * factor, count + factor,
            f"The number {verb}: {count} x {factor} = {count * factor}.",
        )
    if count > low + 1 and rng.random() < 0.5:
        amount = rng.randint(low, min(high, count - 1))
        verb = rng.choice(("gives away", "loses", "uses up"))
        return _Step(
            f"Then {name} {verb} {amount} {item}.", count - amount, count + amount,
            f"{name} {verb} {amount}: {count} - {amount} = {count - amount}.",
        )
    amount = rng.randint(low, high)
    verb = rng.choice(("buys", "finds", "is given"))
    return _Step(
        f"Then {name} {verb} {amount} more {item}.", count + amount, max(count - amount, 0),
        f"{name} {verb} {amount} more: {count} + {amount} = {count + amount}.",
    )


class _Problem(NamedTuple):
    text: str
    answer: int
    slips: list[int]
    # The solution's lines before its conclusion: the start, then one per step.
    working: tuple[str, ...]
    # "So Ava has": the conclusion's opening, and the item counted.
    owner: str
    item: str


def _problem(rng: random.Random, setting: Setting) -> _Problem:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    count = rng.randint(*setting.start)
    sentences = [f"{name} has {count} {item}."]
    working = [f"{name} has {count} {item}."]
    before_last = count
    wrong_way = count
    for _ in range(setting.steps):
        before_last = count
        step = _step(rng, name, count, item, setting)
        count, wrong_way = step.count, step.wrong_way
        sentences.append(step.sentence)
        working.append(step.working)
    sentences.append(f"How many {item} does {name} have now?")
    slips = [before_last, wrong_way, count + rng.choice((-1, 1, -10, 10))]
    return _Problem(" ".join(sentences), count, slips, tuple(working), name, item)


def _distractors(rng: random.Random, answer: int, slips: list[int]) -> list[int]:
    chosen: list[int] = []
    for value in slips + [answer + d for d in (2, -2, 3, -3, 5, -5, 7, 11)]:
        if value != answer and value >= 0 and value not in chosen:
            chosen.append(value)
        if len(chosen) == 3:
            break
    return chosen


@dataclasses.dataclass(frozen=True)
class _Generated:
    splits: dict[str, tuple[Question, ...]]
    # question id -> the problem it was made from (its worked solution)
    problems: dict[str, _Problem]


@functools.lru_cache(maxsize=2)
def _generated(setting: Setting) -> _Generated:
    # One seeded stream for all splits in a fixed order, with one set of texts already used,
    # so no question appears in two splits.
    rng = random.Random(f"fem-{setting.name}-v{setting.version}")
    seen: set[str] = set()
    splits: dict[str, tuple[Question, ...]] = {}
    problems: dict[str, _Problem] = {}
    for split, size in SPLIT_SIZES.items():
        questions: list[Question] = []
        while len(questions) < size:
            problem = _problem(rng, setting)
            if problem.text in seen:
                continue
            seen.add(problem.text)
            values = [problem.answer, *_distractors(rng, problem.answer, problem.slips)]
            rng.shuffle(values)
            question = Question(
                id=f"{setting.name}-v{setting.version}-{split}-{len(questions):04d}",
                question=problem.text,
                choices=[str(v) for v in values],
                labels=list(LABELS),
                answer=LABELS[values.index(problem.answer)],
                subject=None,
            )
            questions.append(question)
            problems[question.id] = problem
        splits[split] = tuple(questions)
    return _Generated(splits, problems)


def _solution(setting: Setting, question: Question) -> str:
    """The worked solution of `question` as shown: its choices may be in another order (the label
    named is the one the result is shown under). FemError for a question this generator did not make."""
    problem = _generated(setting).problems.get(question.id)
    if problem is None or problem.text != question.question:
        raise FemError(
            f"question {question.id}: not a question of the {setting.name} generator (version {setting.version}), "
            "so it has no reference solution"
        )
    result = str(problem.answer)
    if question.choices.count(result) != 1 or question.labels[question.choices.index(result)] != question.answer:
        raise FemError(f"question {question.id}: its gold {question.answer} is not the result {result} among its choices")
    conclusion = f"So {problem.owner} has {result} {problem.item}, which is choice {question.answer}."
    return "\n".join([*problem.working, conclusion, answer_line(question.answer)])


def generate(split: str) -> list[Question]:
    return list(_generated(ARITH).splits[split])


def generate_hard(split: str) -> list[Question]:
    return list(_generated(ARITH_HARD).splits[split])


def solution(question: Question) -> str:
    """The worked solution of an `arith` question (see `_solution`)."""
    return _solution(ARITH, question)


def solution_hard(question: Question) -> str:
    """The worked solution of an `arith_hard` question (see `_solution`)."""
    return _solution(ARITH_HARD, question)
