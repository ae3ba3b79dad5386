"""Prompt templates: the one place that says how a question is put to the model.

A prompt is a list of chat messages; `render` turns it into text with the tokenizer's chat template
(plain "Role: text" turns when the tokenizer has none). The hinted variant (STaR's rationalization
and PPS) adds the correct answer and asks for reasoning that reaches it without saying it was told.
A recipe overrides any field under `prompt:`.

    messages = build_messages(question, PromptTemplate(), hint=True)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fem_cli.config import option
from fem_cli.records import Message, Question

DEFAULT_INSTRUCTION = (
    "Think step by step, then finish with a last line of the form \"Answer: <label>\", "
    "where <label> is one of {labels}."
)
DEFAULT_HINT = (
    "The correct answer is {answer}. Write the step-by-step reasoning that leads to it as if you "
    "had worked it out yourself: do not mention that the answer was given to you."
)

# One worked example as a prior user/assistant turn: small models rarely follow the answer format
# zero-shot (SmolLM2-135M: 8 % of samples have an Answer line zero-shot, 65-85 % with one example).
# It is made up, so it cannot leak any benchmark item.
EXAMPLE_QUESTION = Question(
    id="fem-worked-example",
    question="Which of these animals is a mammal?",
    choices=["shark", "dolphin", "trout", "octopus"],
    labels=["A", "B", "C", "D"],
    answer="B",
)
EXAMPLE_RATIONALE = (
    "Sharks and trout are fish: they breathe through gills. An octopus is a mollusc. "
    "A dolphin breathes air with lungs and feeds its young with milk, so it is a mammal.\n"
    "Answer: B"
)


@dataclasses.dataclass
class PromptTemplate:
    """How questions are rendered. Placeholders: {question} {choices} {labels} {answer}."""

    system: str = option("", "System message (empty: none).")
    question_format: str = option("Question: {question}\n{choices}", "How the question and its choices are laid out.")
    choice_format: str = option("{label}. {choice}", "How one labelled choice is written.")
    instruction: str = option(DEFAULT_INSTRUCTION, "The instruction after the question.")
    hint: str = option(DEFAULT_HINT, "Added to the instruction in hinted prompts (STaR rationalization, PPS).")
    worked_example: bool = option(True, "Show one worked example as a prior user/assistant turn.")


def _user_text(question: Question, template: PromptTemplate, hint: bool) -> str:
    choices = "\n".join(
        template.choice_format.format(label=label, choice=choice)
        for label, choice in zip(question.labels, question.choices)
    )
    fields: dict[str, Any] = {
        "question": question.question,
        "choices": choices,
        "labels": ", ".join(question.labels),
        "answer": question.answer,
    }
    parts = [template.question_format.format(**fields)]
    if hint:
        parts.append(template.hint.format(**fields))
    parts.append(template.instruction.format(**fields))
    return "\n\n".join(parts)


def build_messages(question: Question, template: PromptTemplate, hint: bool = False) -> list[Message]:
    messages: list[Message] = []
    if template.system:
        messages.append(Message(role="system", content=template.system))
    if template.worked_example:
        messages.append(Message(role="user", content=_user_text(EXAMPLE_QUESTION, template, hint)))
        messages.append(Message(role="assistant", content=EXAMPLE_RATIONALE))
    messages.append(Message(role="user", content=_user_text(question, template, hint)))
    return messages


def hint_text(question: Question, template: PromptTemplate) -> str:
    """The hint sentence as it appears in a hinted prompt (the leak check looks for echoes)."""
    return template.hint.format(
        question=question.question, choices="", labels=", ".join(question.labels), answer=question.answer
    )


def render(tokenizer: Any, messages: list[Message], completion: str | None = None) -> str:
    """Prompt text for generation (completion None), or prompt + completion for training."""
    as_dicts = [{"role": m.role, "content": m.content} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        if completion is None:
            return tokenizer.apply_chat_template(as_dicts, tokenize=False, add_generation_prompt=True)
        return tokenizer.apply_chat_template(
            as_dicts + [{"role": "assistant", "content": completion}], tokenize=False
        )
    text = "".join(f"{m.role.capitalize()}: {m.content}\n\n" for m in messages) + "Assistant:"
    return text if completion is None else f"{text} {completion}{tokenizer.eos_token or ''}"


def prompt_token_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of rendered text. A chat template already writes its special tokens (BOS
    included), so only plain-text prompts get the tokenizer's own special tokens added."""
    add_special = not getattr(tokenizer, "chat_template", None)
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]
