"""The built-in generated `arith` task: reproducible, disjoint splits, correct answers, and worked
solutions that reach the gold."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from fem_cli.answers import reward
from fem_cli.errors import FemError
from fem_cli.tasks import get_task, load_questions
from fem_cli.tasks.arith import SPLIT_SIZES, generate, generate_hard, solution, solution_hard
from fem_cli.tasks.rotation import permuted


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


# One equation of a worked solution: "a + b = c", "a - b = c" or "a x b = c".
EQUATION = re.compile(r"(\d+) ([-+x]) (\d+) = (\d+)")
OPERATIONS = {"+": int.__add__, "-": int.__sub__, "x": int.__mul__}


@pytest.mark.parametrize(("task", "make", "steps"), [("arith", generate, 2), ("arith_hard", generate_hard, 3)])
def test_every_reference_solution_reaches_the_gold(task, make, steps):
    write = get_task(task).reference_solution
    for question in make("train"):
        text = write(question)
        gold_value = int(question.choices[question.labels.index(question.answer)])
        # The extractor every sampler and `fem filter` use reads the gold from it ...
        answer, score = reward(text, question.labels, question.choices, question.answer)
        assert score == 1.0 and answer.extraction == "label", text
        working, answer_line = text.rsplit("\n", 1)
        assert answer_line == f"Answer: {question.answer}"
        # ... its arithmetic is right, each step starting where the one before ended ...
        lines = working.splitlines()
        assert len(lines) == steps + 2, text  # the start, one line per step, the conclusion
        count = int(re.search(r"has (\d+) ", lines[0]).group(1))
        for line in lines[1:-1]:
            equations = EQUATION.findall(line)
            assert equations, line
            for a, operation, b, result in equations:
                assert OPERATIONS[operation](int(a), int(b)) == int(result), line
            assert int(equations[-1][0]) == count, line  # packs: "k x m = p, and count + p = ..."
            count = int(equations[-1][3])
        # ... and the last number of its working is the gold choice's value.
        assert count == gold_value == int(re.findall(r"\d+", working)[-1]), text
        assert lines[-1].endswith(f"which is choice {question.answer}.")


def test_reference_solution_names_the_label_the_result_is_shown_under():
    question = generate_hard("train")[2]
    shown = permuted(question, [3, 2, 1, 0])
    text = solution_hard(shown)
    assert shown.answer != question.answer
    assert text.endswith(f"which is choice {shown.answer}.\nAnswer: {shown.answer}")
    assert text.rsplit("\n", 2)[0] == solution_hard(question).rsplit("\n", 2)[0]


def test_a_question_the_generator_did_not_make_has_no_solution():
    question = generate("train")[0]
    with pytest.raises(FemError, match="not a question of the arith generator"):
        solution(question.model_copy(update={"question": question.question.replace("has", "holds", 1)}))
    with pytest.raises(FemError, match="not a question of the arith_hard generator"):
        solution_hard(question)
    with pytest.raises(FemError, match="is not the result"):
        solution(question.model_copy(update={"answer": next(label for label in question.labels if label != question.answer)}))
