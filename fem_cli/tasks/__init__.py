"""Tasks: the registry of benchmarks and loading their questions from local files or the hub.

    from fem_cli.tasks import load_questions
    questions = load_questions("arc_challenge", "validation", data_dir="../shared/data").questions
"""

from fem_cli.tasks.registry import TaskSpec, get_task, list_tasks, loglik_format, reference_solutions, task_prompt_style
from fem_cli.tasks.sources import DATA_DIR_ENV, LoadedQuestions, QuestionSource, load_questions

__all__ = ["DATA_DIR_ENV", "LoadedQuestions", "QuestionSource", "TaskSpec", "get_task", "list_tasks", "load_questions", "loglik_format", "reference_solutions", "task_prompt_style"]
