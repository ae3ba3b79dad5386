"""`fem data show`: questions of a task exactly as they will be put to the model.

Prints where the questions came from, then each question's chat messages (and, with `--model`,
the final text after that model's chat template).

    fem data show arc_challenge --split validation -n 2 --data-dir ../shared/data --hint
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import typer
from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from fem_cli.cli.options import config_command
from fem_cli.config import option
from fem_cli.prompts import PromptTemplate, build_messages, check_style, render
from fem_cli.tasks import load_questions, swap, task_prompt_style

data_app = typer.Typer(help="Inspect task data.", no_args_is_help=True)


@dataclasses.dataclass
class DataShowConfig:
    task: str = option("", "Task name (see `fem tasks`) or path to a question file.", argument=True)
    split: str = option("validation", "Split to read.")
    count: int = option(3, "How many questions to show.", short="-n")
    data_dir: Optional[str] = option(None, "Folder of normalized <task>/<split>.jsonl files (default: $FEM_DATA_DIR, else the hub).")
    shuffle: bool = option(False, "Show a random subset instead of the first questions.")
    seed: int = option(0, "Seed of --shuffle.")
    hint: bool = option(False, "Show the hinted prompt (STaR rationalization, PPS).")
    model: Optional[str] = option(None, "Also show the text after this model's chat template.")
    prompt_style: str = option("auto", "Prompt style: choice or judge; auto: the task's own (files: choice).")
    swap_augment: bool = option(False, "Also show each two-choice question with its choices swapped (id <id>~swap).")

    def __post_init__(self) -> None:
        if not self.task:
            raise ValueError("give a task (a name from `fem tasks` or a file)")
        check_style(self.prompt_style)


EXAMPLE = "Example: fem data show arc_challenge --split validation -n 2 --data-dir ../shared/data --hint"


@config_command(DataShowConfig, name="show", epilog=EXAMPLE)
def show_command(cfg: DataShowConfig) -> None:
    """Print questions as prompted: source, chat messages, and the rendered text with --model."""
    loaded = load_questions(cfg.task, cfg.split, data_dir=cfg.data_dir, limit=cfg.count, shuffle=cfg.shuffle, seed=cfg.seed)
    style = task_prompt_style(cfg.task, cfg.prompt_style)
    questions = swap.swap_augment(loaded.questions) if cfg.swap_augment else loaded.questions
    tokenizer = None
    if cfg.model is not None:
        from fem_cli.models import load_tokenizer  # lazy: pulls in transformers

        tokenizer = load_tokenizer(cfg.model)
    console = Console()

    def say(text: str) -> None:
        # Question texts are data, not rich markup ("[blank]" must print as is); soft_wrap keeps
        # rich from inserting line breaks, so the text is exactly what the model gets.
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    say(f"source: {loaded.source}; prompt style: {style}")
    for question in questions:
        console.print(Rule(Text(f"{loaded.task} {question.id} (answer {question.answer})"), style="cyan"))
        messages = build_messages(question, PromptTemplate(), hint=cfg.hint, style=style)
        for message in messages:
            say(f"[{message.role}]")
            say(message.content)
        if tokenizer is not None:
            say(f"[rendered for {cfg.model}]")
            say(render(tokenizer, messages))


show_command.register(data_app)
