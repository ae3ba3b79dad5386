"""Prompt templates: the one place that says how a question is put to the model.

A prompt is a list of chat messages; `render` turns it into text with the tokenizer's chat template
(plain "Role: text" turns when the tokenizer has none). The hinted variant (STaR's rationalization
and PPS) adds the correct answer and asks for reasoning that reaches it without saying it was told.
Two prompt styles: `choice` (a question and its lettered choices) and `judge` (a context, two
delimited responses, which is better); each task declares its own (`TaskSpec.prompt_style`), and
`--prompt-style` chooses for files. A recipe overrides any field under `prompt:`.

    messages = build_messages(question, PromptTemplate(), hint=True, style="judge")
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from fem_cli.config import did_you_mean, option
from fem_cli.records import Message, Question

PROMPT_STYLES = ("auto", "choice", "judge")


@dataclasses.dataclass(frozen=True)
class PromptStyle:
    """The defaults of one kind of question: how it is laid out and its worked example."""

    question_format: str
    choice_format: str
    instruction: str
    hint: str
    # One worked example as a prior user/assistant turn: small models rarely follow the answer
    # format zero-shot (SmolLM2-135M: 8 % of samples have an Answer line zero-shot, 65-85 % with
    # one example). Each is made up, so it cannot leak any benchmark item.
    example_question: Question
    example_rationale: str


CHOICE_STYLE = PromptStyle(
    question_format="Question: {question}\n{choices}",
    choice_format="{label}. {choice}",
    instruction=(
        "Think step by step, then finish with a last line of the form \"Answer: <label>\", "
        "where <label> is one of {labels}."
    ),
    hint=(
        "The correct answer is {answer}. Write the step-by-step reasoning that leads to it as if you "
        "had worked it out yourself: do not mention that the answer was given to you."
    ),
    example_question=Question(
        id="fem-worked-example",
        question="Which of these animals is a mammal?",
        choices=["shark", "dolphin", "trout", "octopus"],
        labels=["A", "B", "C", "D"],
        answer="B",
    ),
    example_rationale=(
        "Sharks and trout are fish: they breathe through gills. An octopus is a mollusc. "
        "A dolphin breathes air with lungs and feeds its young with milk, so it is a mammal.\n"
        "Answer: B"
    ),
)

# A judge compares two responses to one context (a post to summarize, an instruction): each
# response sits between its own markers, so a long response can never be mistaken for the prompt.
JUDGE_STYLE = PromptStyle(
    question_format="{question}\n\n{choices}",
    choice_format="[Response {label}]\n{choice}\n[End of response {label}]",
    instruction=(
        "Which is better, {labels_or}? Think step by step: compare the two responses on what was asked, "
        "then finish with a last line of the form \"Answer: <label>\", where <label> is one of {labels}."
    ),
    hint=(
        "The better response is {answer}. Write the step-by-step comparison that leads to this verdict "
        "as if you had judged it yourself: do not mention that the verdict was given to you."
    ),
    example_question=Question(
        id="fem-worked-example-judge",
        question="Instruction:\nGive one tip for keeping houseplants healthy.\n\nWhich response is better?",
        choices=[
            "Water them.",
            "Check the soil before you water: most houseplants do best when the top few centimetres "
            "are dry, because constantly wet soil rots the roots.",
        ],
        labels=["A", "B"],
        answer="B",
    ),
    example_rationale=(
        "Both responses give one watering tip. Response A is two words: it does not say when or how "
        "much to water, so it hardly helps. Response B says when to water and why, which is accurate "
        "and still a single tip.\n"
        "Answer: B"
    ),
)

STYLES: dict[str, PromptStyle] = {"choice": CHOICE_STYLE, "judge": JUDGE_STYLE}


def answer_line(label: str) -> str:
    """The last line the instruction asks for and the worked examples end on; written solutions
    (a task's reference solutions) end on it too."""
    return f"Answer: {label}"


def check_style(style: str) -> None:
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}{did_you_mean(style, list(PROMPT_STYLES))}; choose from {', '.join(PROMPT_STYLES)}")


@dataclasses.dataclass
class PromptTemplate:
    """How questions are rendered. Placeholders: {question} {choices} {labels} {labels_or} {answer}.
    A field left unset (null) takes the default of the prompt style in use (choice or judge)."""

    system: str = option("", "System message (empty: none).")
    question_format: Optional[str] = option(None, "How the question and its choices are laid out (default: the prompt style's).")
    choice_format: Optional[str] = option(None, "How one labelled choice is written (default: the prompt style's).")
    instruction: Optional[str] = option(None, "The instruction after the question (default: the prompt style's).")
    hint: Optional[str] = option(None, "Added to the instruction in hinted prompts, STaR rationalization and PPS (default: the prompt style's).")
    worked_example: bool = option(True, "Show one worked example (the prompt style's own) as a prior user/assistant turn.")

    def text(self, name: str, style: str) -> str:
        """Field `name` as set, else the default of `style` ("auto" means choice here)."""
        value = getattr(self, name)
        return value if value is not None else getattr(STYLES.get(style, CHOICE_STYLE), name)


def _fields(question: Question, template: PromptTemplate, style: str) -> dict[str, Any]:
    choice_format = template.text("choice_format", style)
    choices = "\n".join(
        choice_format.format(label=label, choice=choice) for label, choice in zip(question.labels, question.choices)
    )
    labels = list(question.labels)
    labels_or = " or ".join([", ".join(labels[:-1]), labels[-1]]) if len(labels) > 1 else labels[0]
    return {
        "question": question.question,
        "choices": choices,
        "labels": ", ".join(labels),
        "labels_or": labels_or,
        "answer": question.answer,
    }


def _user_text(question: Question, template: PromptTemplate, hint: bool, style: str) -> str:
    fields = _fields(question, template, style)
    parts = [template.text("question_format", style).format(**fields)]
    if hint:
        parts.append(template.text("hint", style).format(**fields))
    parts.append(template.text("instruction", style).format(**fields))
    return "\n\n".join(parts)


def build_messages(question: Question, template: PromptTemplate, hint: bool = False, style: str = "choice") -> list[Message]:
    """The chat messages of `question` in prompt `style` (choice or judge; see `task_prompt_style`)."""
    messages: list[Message] = []
    if template.system:
        messages.append(Message(role="system", content=template.system))
    if template.worked_example:
        example = STYLES.get(style, CHOICE_STYLE)
        messages.append(Message(role="user", content=_user_text(example.example_question, template, hint, style)))
        messages.append(Message(role="assistant", content=example.example_rationale))
    messages.append(Message(role="user", content=_user_text(question, template, hint, style)))
    return messages


def hint_text(question: Question, template: PromptTemplate, style: str = "choice") -> str:
    """The hint sentence as it appears in a hinted prompt (the leak check looks for echoes)."""
    return template.text("hint", style).format(**{**_fields(question, template, style), "choices": ""})


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
