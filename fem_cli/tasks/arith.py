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

    load_questions("arith", "train")  # 2000 questions
"""

from __future__ import annotations

import dataclasses
import functools
import random

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


def _step(rng: random.Random, name: str, count: int, item: str, setting: Setting) -> tuple[str, int, int]:
    """One operation: (sentence, new count, count if done the wrong way round)."""
    low, high = setting.amount
    # `arith` draws exactly as version 2 did (one random() per step), so its questions stay the same.
    if setting.multiply and rng.random() < 0.4:
        if rng.random() < 0.5:
            packs, size = rng.randint(2, 6), rng.randint(3, 12)
            return f"Then {name} buys {packs} packs of {size} {item}.", count + packs * size, count + packs + size
        factor, verb = rng.choice(((2, "doubles"), (3, "triples")))
        return f"Then the number of {item} {name} has {verb}.", count * factor, count + factor
    if count > low + 1 and rng.random() < 0.5:
        amount = rng.randint(low, min(high, count - 1))
        verb = rng.choice(("gives away", "loses", "uses up"))
        return f"Then {name} {verb} {amount} {item}.", count - amount, count + amount
    amount = rng.randint(low, high)
    verb = rng.choice(("buys", "finds", "is given"))
    return f"Then {name} {verb} {amount} more {item}.", count + amount, max(count - amount, 0)


def _problem(rng: random.Random, setting: Setting) -> tuple[str, int, list[int]]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    count = rng.randint(*setting.start)
    sentences = [f"{name} has {count} {item}."]
    before_last = count
    wrong_way = count
    for _ in range(setting.steps):
        before_last = count
        sentence, count, wrong_way = _step(rng, name, count, item, setting)
        sentences.append(sentence)
    sentences.append(f"How many {item} does {name} have now?")
    slips = [before_last, wrong_way, count + rng.choice((-1, 1, -10, 10))]
    return " ".join(sentences), count, slips


def _distractors(rng: random.Random, answer: int, slips: list[int]) -> list[int]:
    chosen: list[int] = []
    for value in slips + [answer + d for d in (2, -2, 3, -3, 5, -5, 7, 11)]:
        if value != answer and value >= 0 and value not in chosen:
            chosen.append(value)
        if len(chosen) == 3:
            break
    return chosen


@functools.lru_cache(maxsize=2)
def _all_splits(setting: Setting) -> dict[str, tuple[Question, ...]]:
    # One seeded stream for all splits in a fixed order, with one set of texts already used,
    # so no question appears in two splits.
    rng = random.Random(f"fem-{setting.name}-v{setting.version}")
    seen: set[str] = set()
    splits: dict[str, tuple[Question, ...]] = {}
    for split, size in SPLIT_SIZES.items():
        questions: list[Question] = []
        while len(questions) < size:
            text, answer, slips = _problem(rng, setting)
            if text in seen:
                continue
            seen.add(text)
            values = [answer, *_distractors(rng, answer, slips)]
            rng.shuffle(values)
            questions.append(
                Question(
                    id=f"{setting.name}-v{setting.version}-{split}-{len(questions):04d}",
                    question=text,
                    choices=[str(v) for v in values],
                    labels=list(LABELS),
                    answer=LABELS[values.index(answer)],
                    subject=None,
                )
            )
        splits[split] = tuple(questions)
    return splits


def generate(split: str) -> list[Question]:
    return list(_all_splits(ARITH)[split])


def generate_hard(split: str) -> list[Question]:
    return list(_all_splits(ARITH_HARD)[split])
