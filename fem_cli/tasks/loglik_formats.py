"""How the `loglik` protocol puts a task's questions: a context and one continuation per choice.

The formats are lm-evaluation-harness's (tasks/arc, tasks/openbookqa, tasks/mmlu/default),
zero-shot; each task names its own on its `TaskSpec` (`loglik_format`). Plain text only: the
scoring itself is `fem_cli.evaluation.loglik`.

    arc_easy, arc_challenge   context      "Question: {question}\\nAnswer:"
                              continuation " {choice text}"
    openbookqa                context      "{question_stem}"
                              continuation " {choice text}"
    mmlu, mmlu:<subject>      context      "The following are multiple choice questions (with answers)
                                            about {subject, _ -> space}.\\n\\n{question, stripped}\\n
                                            A. {choice 1}\\nB. {choice 2}\\nC. {choice 3}\\nD. {choice 4}\\nAnswer:"
                              continuation " A", " B", " C", " D"
    a question file           as arc_easy (lm-eval's plain question-answer format)

    question_answer(question).context  # -> "Question: Which gas do plants take in?\\nAnswer:"
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from fem_cli.records import Question


@dataclasses.dataclass(frozen=True)
class ChoiceRequest:
    """One question as lm-eval puts it: a context and the choices' texts (`doc_to_choice`)."""

    context: str
    choices: list[str]
    delimiter: str = " "  # lm-eval's target_delimiter, put before each choice

    @property
    def continuations(self) -> list[str]:
        return [self.delimiter + choice for choice in self.choices]


LoglikFormat = Callable[[Question], ChoiceRequest]


def question_answer(question: Question) -> ChoiceRequest:
    """ARC's format, which lm-eval also uses for generic multiple-choice questions."""
    return ChoiceRequest(f"Question: {question.question}\nAnswer:", list(question.choices))


def question_stem(question: Question) -> ChoiceRequest:
    """OpenBookQA's: the stem alone, completed by each choice."""
    return ChoiceRequest(question.question, list(question.choices))


def lettered_choices(question: Question) -> ChoiceRequest:
    """MMLU's: the lettered choices in the context, scored by their letters."""
    about = f" about {question.subject.replace('_', ' ')}" if question.subject else ""
    lines = "".join(f"\n{label}. {choice}" for label, choice in zip(question.labels, question.choices))
    context = (
        f"The following are multiple choice questions (with answers){about}.\n\n"
        f"{question.question.strip()}{lines}\nAnswer:"
    )
    return ChoiceRequest(context, list(question.labels))
