"""`arith`: a built-in, procedurally generated task of short multi-step arithmetic word problems.

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

    load_questions("arith", "train")  # 2000 questions
"""

from __future__ import annotations

import functools
import random

from fem_cli.records import Question

SPLIT_SIZES = {"train": 2000, "validation": 200, "test": 500}
LABELS = ("A", "B", "C", "D")
_VERSION = 2  # bump when the generator changes: different questions, new ids

_NAMES = ("Ava", "Ben", "Chloe", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena", "Mia", "Noor", "Omar", "Pia")
_ITEMS = ("apples", "marbles", "stickers", "coins", "books", "pencils", "shells", "cards", "stamps", "cookies")


def _step(rng: random.Random, name: str, count: int, item: str) -> tuple[str, int, int]:
    """One operation: (sentence, new count, count if done the wrong way round)."""
    if count > 2 and rng.random() < 0.5:
        amount = rng.randint(1, min(9, count - 1))
        verb = rng.choice(("gives away", "loses", "uses up"))
        return f"Then {name} {verb} {amount} {item}.", count - amount, count + amount
    amount = rng.randint(1, 9)
    verb = rng.choice(("buys", "finds", "is given"))
    return f"Then {name} {verb} {amount} more {item}.", count + amount, max(count - amount, 0)


def _problem(rng: random.Random) -> tuple[str, int, list[int]]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    count = rng.randint(2, 20)
    sentences = [f"{name} has {count} {item}."]
    before_last = count
    wrong_way = count
    for _ in range(2):
        before_last = count
        sentence, count, wrong_way = _step(rng, name, count, item)
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


@functools.lru_cache(maxsize=1)
def _all_splits() -> dict[str, tuple[Question, ...]]:
    # One seeded stream for all splits in a fixed order, with one set of texts already used,
    # so no question appears in two splits.
    rng = random.Random(f"fem-arith-v{_VERSION}")
    seen: set[str] = set()
    splits: dict[str, tuple[Question, ...]] = {}
    for split, size in SPLIT_SIZES.items():
        questions: list[Question] = []
        while len(questions) < size:
            text, answer, slips = _problem(rng)
            if text in seen:
                continue
            seen.add(text)
            values = [answer, *_distractors(rng, answer, slips)]
            rng.shuffle(values)
            questions.append(
                Question(
                    id=f"arith-v{_VERSION}-{split}-{len(questions):04d}",
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
    return list(_all_splits()[split])
