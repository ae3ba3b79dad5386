"""`fem data show`: questions of a task exactly as they will be put to the model.

Prints where the questions came from, then each question's chat messages (and, with `--model`,
the final text after that model's chat template).

    fem data show arc_challenge --split validation -n 2 --data-dir ../shared/data --hint
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from fem_cli.errors import FemError
from fem_cli.prompts import PROMPT_STYLES, PromptTemplate, build_messages, render
from fem_cli.tasks import load_questions, task_prompt_style
from fem_cli.tasks import swap

data_app = typer.Typer(help="Inspect task data.", no_args_is_help=True)


@data_app.command(
    "show", epilog="Example: fem data show arc_challenge --split validation -n 2 --data-dir ../shared/data --hint"
)
def show_command(
    task: Annotated[str, typer.Argument(help="Task name (see `fem tasks`) or path to a question file.")],
    split: Annotated[str, typer.Option(help="Split to read.")] = "validation",
    count: Annotated[int, typer.Option("-n", "--count", help="How many questions to show.")] = 3,
    data_dir: Annotated[
        Optional[Path],
        typer.Option(help="Folder of normalized <task>/<split>.jsonl files (default: $FEM_DATA_DIR, else the hub)."),
    ] = None,
    shuffle: Annotated[bool, typer.Option(help="Show a random subset instead of the first questions.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of --shuffle.")] = 0,
    hint: Annotated[bool, typer.Option(help="Show the hinted prompt (STaR rationalization, PPS).")] = False,
    model: Annotated[Optional[str], typer.Option(help="Also show the text after this model's chat template.")] = None,
    prompt_style: Annotated[
        str, typer.Option(help="Prompt style: choice or judge; auto: the task's own (files: choice).")
    ] = "auto",
    swap_augment: Annotated[bool, typer.Option(help="Also show each two-choice question with its choices swapped (id <id>~swap).")] = False,
) -> None:
    """Print questions as prompted: source, chat messages, and the rendered text with --model."""
    if prompt_style not in PROMPT_STYLES:
        raise FemError(f"unknown prompt style {prompt_style!r}; choose from {', '.join(PROMPT_STYLES)}")
    loaded = load_questions(task, split, data_dir=data_dir, limit=count, shuffle=shuffle, seed=seed)
    style = task_prompt_style(task, prompt_style)
    questions = swap.swap_augment(loaded.questions) if swap_augment else loaded.questions
    tokenizer = None
    if model is not None:
        from fem_cli.models import load_tokenizer  # lazy: pulls in transformers

        tokenizer = load_tokenizer(model)
    console = Console()

    def say(text: str) -> None:
        # Question texts are data, not rich markup ("[blank]" must print as is); soft_wrap keeps
        # rich from inserting line breaks, so the text is exactly what the model gets.
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    say(f"source: {loaded.source}; prompt style: {style}")
    for question in questions:
        console.print(Rule(Text(f"{loaded.task} {question.id} (answer {question.answer})"), style="cyan"))
        messages = build_messages(question, PromptTemplate(), hint=hint, style=style)
        for message in messages:
            say(f"[{message.role}]")
            say(message.content)
        if tokenizer is not None:
            say(f"[rendered for {model}]")
            say(render(tokenizer, messages))
