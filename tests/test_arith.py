"""The built-in generated `arith` task: reproducible, disjoint splits, correct answers."""

from __future__ import annotations

import re
from collections import Counter

from fem_cli.tasks import load_questions
from fem_cli.tasks.arith import SPLIT_SIZES, generate, generate_hard


def solve(text: str) -> int:
    """Recompute the answer from the words alone, independently of the generator's bookkeeping."""
    count = int(re.search(r"has (\d+) ", text).group(1))
    for sentence in text.split(". ")[1:]:
        if match := re.search(r"(?:buys|finds|is given) (\d+) more", sentence):
            count += int(match.group(1))
        elif match := re.search(r"(?:gives away|loses|uses up) (\d+) ", sentence):
            count -= int(match.group(1))
    return count


def test_sizes_ids_and_no_question_in_two_splits():
    texts = {}
    for split, size in SPLIT_SIZES.items():
        questions = generate(split)
        assert len(questions) == size
        assert len({q.id for q in questions}) == size
        texts[split] = {q.question for q in questions}
        assert len(texts[split]) == size
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]


def test_gold_is_the_true_result_and_distractors_differ():
    for question in generate("validation"):
        gold = question.choices[question.labels.index(question.answer)]
        assert int(gold) == solve(question.question), question.question
        assert len(set(question.choices)) == 4
        assert all(int(choice) >= 0 for choice in question.choices)
        assert question.question.count("Then ") == 2


def test_answers_are_spread_over_the_labels():
    counts = Counter(q.answer for q in generate("train"))
    assert set(counts) == {"A", "B", "C", "D"}
    assert min(counts.values()) > 0.2 * 2000


def test_loads_as_a_task_without_data_dir_or_network():
    loaded = load_questions("arith", "validation", limit=5, shuffle=True, seed=1)
    assert loaded.task == "arith" and len(loaded.questions) == 5
    assert loaded.source == "built-in generated task arith, split validation"
    assert [q.id for q in loaded.questions] == [q.id for q in load_questions("arith", "validation", limit=5, shuffle=True, seed=1).questions]


def solve_hard(text: str) -> int:
    """`solve` plus the multiplying steps of arith_hard."""
    count = int(re.search(r"has (\d+) ", text).group(1))
    for sentence in text.split(". ")[1:]:
        if match := re.search(r"(?:buys|finds|is given) (\d+) more", sentence):
            count += int(match.group(1))
        elif match := re.search(r"(?:gives away|loses|uses up) (\d+) ", sentence):
            count -= int(match.group(1))
        elif match := re.search(r"buys (\d+) packs of (\d+) ", sentence):
            count += int(match.group(1)) * int(match.group(2))
        elif "doubles" in sentence or "triples" in sentence:
            count *= 2 if "doubles" in sentence else 3
    return count


def test_arith_hard_is_correct_harder_and_apart_from_arith():
    questions = generate_hard("validation")
    assert len(questions) == SPLIT_SIZES["validation"] and questions[0].id == "arith_hard-v1-validation-0000"
    for question in questions:
        gold = question.choices[question.labels.index(question.answer)]
        assert int(gold) == solve_hard(question.question), question.question
        assert len(set(question.choices)) == 4 and all(int(choice) >= 0 for choice in question.choices)
        assert question.question.count("Then ") == 3
    texts = " ".join(q.question for q in questions)
    assert "packs of" in texts and "triples" in texts and "doubles" in texts
    assert not {q.question for q in questions} & {q.question for q in generate("validation")}
    assert Counter(q.answer for q in generate_hard("train")).most_common()[-1][1] > 0.2 * 2000
    loaded = load_questions("arith_hard", "test", limit=3)
    assert [q.id for q in loaded.questions] == [f"arith_hard-v1-test-{i:04d}" for i in range(3)]
