"""Reading a model's output: which choice it answered, where its answer line ends, whether it leaks.

`read_answer` turns a completion into one of the question's labels (or None), saying how it was
read; `extract_answer` is its label alone, the scorer of generative evaluation; `reward` compares
it with the gold label for every sampler and `fem filter`. `answer_line_end` lets the generation
backends stop decoding once the answer line is complete. `find_hint_leak` drops hinted rationales that admit
the answer was given to them, so that fine-tuning never teaches the model to cite a missing hint.

    extract_answer("...so it is a mammal.\\nAnswer: B", ["A", "B"], ["shark", "dolphin"])  # -> "B"
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Literal, NamedTuple

# --- extract_answer ------------------------------------------------------------------------------
#
# Candidate answers are looked for in layers, strongest first; within a layer the last candidate
# wins (models revise themselves), and the first layer holding a clear reading decides:
#   1. explicit markers   "Answer: B", "**Final answer:** (B)", "Answer: cellular telephone"
#   2. statements         "the correct answer is B.", "the answer is cellular telephone"
#   3. a label last line  "B", "(B)", "B) cellular telephone"
#   4. content            a final sentence naming exactly one choice's text, with no label at all
#                         ("The technology developed most recently is television.")
# The text after a marker (its "body") is read as a bare label, then as a choice's text, then as a
# label followed by more words. Layers 1-3 are reported as extraction "label", layer 4 as "content".

# A reading of one body: (True, label) is a clear answer; (True, None) clearly not a usable answer
# (a label that is not offered, two labels); (False, None) not an answer at all, so look further.
_Reading = tuple[bool, str | None]
_NOTHING: _Reading = (False, None)
_REJECT: _Reading = (True, None)

_EXPLICIT = re.compile(r"\banswer\s*:", re.IGNORECASE)
_STATED = re.compile(
    r"\b(?:answer|option|choice)(?:\s+to\s+(?:this|the)\s+question)?"
    r"\s+(?:is|would\s+be|must\s+be|should\s+be)\b[ \t]*:?",
    re.IGNORECASE,
)
# A label token: one letter or a 1-2 digit number, maybe bracketed, not the start of a longer word.
_TOKEN = r"[(\[]?([A-Za-z]|\d{1,2})(?![A-Za-z0-9])[)\]]?"
_BARE_LABEL = re.compile(_TOKEN + r"[.!:]?")
_LEADING_LABEL = re.compile(_TOKEN)
_OPTION_WORD = re.compile(r"(?:option|choice)\s+(?=" + _TOKEN + ")", re.IGNORECASE)
# "I think ...", "I'm ...": the pronoun, not label I.
_PRONOUN_TAIL = re.compile(r"'|\s+[a-z]")
# A second label right after the first ("A or C", "A and B", "A, C") makes the answer ambiguous;
# it must end the clause, so that "B, and A is wrong" still reads as B.
_SECOND_LABEL = re.compile(
    r"\s*(?:,|/|&|\bor\b|\band\b)\s*(?:(?:option|choice)\s+)?" + _TOKEN + r"(?=\s*(?:$|[.,;:!?)]))",
    re.IGNORECASE,
)
# A last line "B", "(B).", "B) text", "B: text"; a label followed by a bare word ("A dolphin ...")
# is prose, not a label.
_LABEL_LINE = re.compile(r"[(\[]?([A-Za-z]|\d{1,2})(?:[)\]:.]+(?=\s|$)|$)")
_LEADING_NOISE = re.compile(r"^[\s\"'(\[]*(?:(?:the|a|an)\s+)?", re.IGNORECASE)
_TRAILING_NOISE = re.compile(r"[\s.,;:!?\"')\]]+$")
# After a choice's text only punctuation may follow ("cellular telephone, since ..."): with a word
# after it, the text is more likely the start of a sentence than an answer.
_AFTER_CHOICE = re.compile(r"\s*[^\w\s]")


Extraction = Literal["label", "content"]


class Answer(NamedTuple):
    """A completion's final answer: the label (None if unclear) and how it was read (None then too)."""

    label: str | None
    extraction: Extraction | None


_UNPARSED = Answer(None, None)


def extract_answer(text: str, labels: Sequence[str], choices: Sequence[str]) -> str | None:
    """The label (spelled as in `labels`) that `text` gives as its final answer, or None if unclear."""
    return read_answer(text, labels, choices).label


def read_answer(text: str, labels: Sequence[str], choices: Sequence[str]) -> Answer:
    """The final answer of `text` and whether a label line/marker or the content gave it."""
    return _locate(_clean(text), labels, choices)[0]


def _clean(text: str) -> str:
    # Markdown emphasis ("**Answer:** **B**") carries no meaning here and would split the patterns.
    return text.replace("*", "")


def _locate(clean: str, labels: Sequence[str], choices: Sequence[str]) -> tuple[Answer, int | None]:
    """The final answer of `clean` and where the statement giving it starts: the marker that
    decided, or the label last line; None when the content gave it (or nothing did)."""
    for pattern in (_EXPLICIT, _STATED):
        for start, body in reversed(list(_bodies(pattern, clean))):
            decided, label = _read_body(body, labels, choices)
            if decided:
                return _answer(label, "label"), start
    decided, label = _last_line_label(clean, labels)
    if decided:
        return _answer(label, "label"), clean.rstrip().rfind("\n") + 1
    return _answer(_content_label(clean, labels, choices), "content"), None


def _answer(label: str | None, extraction: Extraction) -> Answer:
    return Answer(label, extraction) if label is not None else _UNPARSED


def reward(text: str, labels: Sequence[str], choices: Sequence[str], gold: str) -> tuple[Answer, float]:
    """The answer read from `text` (label and how it was read) and 1.0 if it is the gold label:
    how samplers and `fem filter` score a completion."""
    answer = read_answer(text, labels, choices)
    return answer, float(answer.label == gold)


def _bodies(pattern: re.Pattern[str], text: str) -> Iterator[tuple[int, str]]:
    """Each match's start, and the rest of its line; the next non-empty line when that is blank."""
    for match in pattern.finditer(text):
        first, _, after = text[match.end():].partition("\n")
        yield match.start(), first if first.strip() else after.lstrip().partition("\n")[0]


def _read_body(body: str, labels: Sequence[str], choices: Sequence[str]) -> _Reading:
    body = _OPTION_WORD.sub("", body.strip(), count=1)
    bare = _BARE_LABEL.fullmatch(body)
    if bare:
        return _label_reading(bare.group(1), labels, lowercase_ok=True)
    # Choice text before a leading label, so that "A dolphin." reads as the choice "dolphin".
    reading = _choice_reading(body, labels, choices)
    if reading[0]:
        return reading
    return _leading_label_reading(body, labels)


def _choice_reading(body: str, labels: Sequence[str], choices: Sequence[str]) -> _Reading:
    """The choice whose text the body is (or starts with, then punctuation); the longest wins."""
    said = _normalize(body)
    normalized = [_normalize(choice) for choice in choices]
    exact = {label for label, choice in zip(labels, normalized) if choice and choice == said}
    if exact:
        return (True, exact.pop()) if len(exact) == 1 else _REJECT
    prefixes = [
        (len(choice), label)
        for label, choice in zip(labels, normalized)
        if choice and said.startswith(choice) and _AFTER_CHOICE.match(said, len(choice))
    ]
    if not prefixes:
        return _NOTHING
    longest = max(length for length, _ in prefixes)
    best = {label for length, label in prefixes if length == longest}
    # Two choices with the same text cannot be told apart.
    return (True, best.pop()) if len(best) == 1 else _REJECT


def _leading_label_reading(body: str, labels: Sequence[str]) -> _Reading:
    match = _LEADING_LABEL.match(body)
    if not match:
        return _NOTHING
    token, rest = match.group(1), body[match.end():]
    if token == "I" and _PRONOUN_TAIL.match(rest):
        return _NOTHING
    # A lowercase letter followed by a word is the article "a", not label A.
    reading = _label_reading(token, labels, lowercase_ok=not rest[:1].isspace())
    second = _SECOND_LABEL.match(rest)
    if reading[1] is not None and second:
        other = _lookup(second.group(1), labels, lowercase_ok=True)
        if other is not None and other != reading[1]:
            return _REJECT
    return reading


def _label_reading(token: str, labels: Sequence[str], lowercase_ok: bool) -> _Reading:
    # A number among letter labels (or a letter among numbered ones) is a quantity or a word,
    # not a wrong label: keep looking.
    if not labels or token.isdigit() != all(label.isdigit() for label in labels):
        return _NOTHING
    if token.islower() and not lowercase_ok:
        return _NOTHING
    label = _lookup(token, labels, lowercase_ok)
    return _REJECT if label is None else (True, label)


def _lookup(token: str, labels: Sequence[str], lowercase_ok: bool) -> str | None:
    if token in labels:
        return token
    if lowercase_ok:
        return next((label for label in labels if label.lower() == token.lower()), None)
    return None


def _last_line_label(text: str, labels: Sequence[str]) -> _Reading:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return _NOTHING
    match = _LABEL_LINE.match(lines[-1])
    if not match:
        return _NOTHING
    # "C. trout\nD. octopus" at the end is the list of choices repeated, not an answer.
    previous = _LABEL_LINE.match(lines[-2]) if len(lines) > 1 else None
    if previous and previous.group(1) != match.group(1):
        return _REJECT
    return _label_reading(match.group(1), labels, lowercase_ok=True)


# The last sentence of the last line: what follows the last ".", "!" or "?" followed by a space.
_SENTENCE_END = re.compile(r"[.!?]\s+(?=\S)")
# "not television", "isn't the radio", "neither ... nor": a named choice is not necessarily chosen.
_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|none|cannot)\b|n't\b", re.IGNORECASE)


def _content_label(text: str, labels: Sequence[str], choices: Sequence[str]) -> str | None:
    """The one choice whose text the final sentence names, or None (none, several, or negated).

    A choice's text counts only as whole words ("4" is not in "14" nor in "4.5"), and an
    occurrence inside another choice's longer occurrence is that longer choice ("telephone" in
    "cellular telephone"). Two choices named apart, or the same text for two labels, stay unread.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    return _named_choice(_SENTENCE_END.split(lines[-1])[-1], labels, choices)


def _named_choice(sentence: str, labels: Sequence[str], choices: Sequence[str]) -> str | None:
    """The one choice whose text `sentence` names, or None (none, several, or negated)."""
    sentence = " ".join(sentence.split()).lower()
    if _NEGATION.search(sentence):
        return None
    spans: list[tuple[int, int, str]] = []
    for label, choice in zip(labels, choices):
        said = _normalize(choice)
        if not said:
            continue
        pattern = re.compile(r"(?<![\w.,])" + re.escape(said) + r"(?!\w|[.,]\d)")
        spans.extend((match.start(), match.end(), label) for match in pattern.finditer(sentence))
    named = {
        label for start, end, label in spans
        if not any(s <= start and end <= e and (e - s) > (end - start) for s, e, _ in spans)
    }
    return named.pop() if len(named) == 1 else None


def _normalize(text: str) -> str:
    """Lowercase, one space between words, no leading article or quotes, no trailing punctuation."""
    text = " ".join(text.split()).lower()
    return _TRAILING_NOISE.sub("", _LEADING_NOISE.sub("", text))


# --- content_answer ------------------------------------------------------------------------------
#
# A rationale may end on an answer its own working does not reach: a hinted draw can write wrong
# working and then the hinted label. `content_answer` reads the choice the working reaches, apart
# from the final answer. The working is the text before the statement that gives the final answer
# (the deciding "Answer:" marker or "the answer is", or a label last line; all of the text when
# the content itself gave the answer), without lines that restate a choice ("C. 159", a bare "C")
# and label mentions ("choice C", "option (C)", "(C)"), which say a label, not a working's result:
#   numeric choices (every choice a number, "159", "-3", "1,250", "2.5"): the last number written
#     in the working, if it is one choice's value (a last number that is no choice reaches none);
#   text choices: the last sentence that names exactly one choice's text, as layer 4 reads one.

_NUMBER_BODY = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
# A number in prose: not part of a word or of a longer number ("x3", "2.5"'s "5", "159th").
_NUMBER = re.compile(r"(?<![\w.])(-?)(" + _NUMBER_BODY + r")(?!\w|\.\d)")
_CHOICE_NUMBER = re.compile("-?" + _NUMBER_BODY)
# A minus right after an operand ("53 - 3") subtracts: the number is 3, not -3.
_OPERAND_END = re.compile(r"[\d)]\s*$")


def content_answer(text: str, labels: Sequence[str], choices: Sequence[str]) -> str | None:
    """The label of the choice the working of `text` reaches, or None when it names none."""
    clean = _clean(text)
    return _reached(clean, _locate(clean, labels, choices)[1], labels, choices)


def consistency(text: str, labels: Sequence[str], choices: Sequence[str]) -> bool | None:
    """Whether the working of `text` reaches the answer its answer line gives (False also when it
    reaches a choice and the answer is unreadable); None when the working names no choice."""
    clean = _clean(text)
    answer, start = _locate(clean, labels, choices)
    reached = _reached(clean, start, labels, choices)
    return None if reached is None else reached == answer.label


def _reached(clean: str, start: int | None, labels: Sequence[str], choices: Sequence[str]) -> str | None:
    names = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    mention = re.compile(rf"(?i:\b(?:option|choice))\s+[(\[]?(?:{names})(?![A-Za-z0-9])[)\]]?|[(\[](?:{names})[)\]]")
    restated = re.compile(rf"[(\[]?({names})(?:[)\]:.]+\s*(.*)|\s*$)")
    lines = []
    for line in (clean if start is None else clean[:start]).splitlines():
        listing = restated.fullmatch(line.strip())
        if listing and (not listing.group(2) or _normalize(listing.group(2)) == _normalize(choices[labels.index(listing.group(1))])):
            continue
        lines.append(mention.sub(" ", line))
    if all(_CHOICE_NUMBER.fullmatch(choice.strip()) for choice in choices):
        return _last_number_choice("\n".join(lines), labels, choices)
    sentences = [sentence for line in lines for sentence in _SENTENCE_END.split(line.strip())]
    return next((label for sentence in reversed(sentences) if (label := _named_choice(sentence, labels, choices))), None)


def _last_number_choice(working: str, labels: Sequence[str], choices: Sequence[str]) -> str | None:
    numbers = list(_NUMBER.finditer(working))
    if not numbers:
        return None
    last = numbers[-1]
    value = _number(last.group(2))
    if last.group(1) and not _OPERAND_END.search(working, 0, last.start()):
        value = -value
    reached = [label for label, choice in zip(labels, choices) if _number(choice.strip()) == value]
    return reached[0] if len(reached) == 1 else None


def _number(text: str) -> float:
    return float(text.replace(",", ""))


# --- answer_line_end -----------------------------------------------------------------------------

# "Answer: X" complete: X (a letter or a 1-2 digit number) must be followed by a non-alphanumeric
# character, so that a streamed "Answer: 1" is not cut before its "0". The lookahead sits before the
# optional ")" / "**" so that those are kept in the cut text while "." or a newline is not.
_ANSWER_LINE = re.compile(
    r"\banswer(?:\*\*)?[ \t]*:[ \t]*(?:\*\*)?[ \t]*\(?(?:[A-Za-z]|\d{1,2})(?=[^A-Za-z0-9])\)?(?:\*\*)?",
    re.IGNORECASE,
)


def answer_line_end(text: str) -> int | None:
    """Index just past the first complete explicit "Answer: X" marker, or None if there is none yet."""
    match = _ANSWER_LINE.search(text)
    return match.end() if match else None


# --- find_hint_leak ------------------------------------------------------------------------------

# Families of admissions that the answer came from outside. A plain "The correct answer is B" or
# "Given that plants need sunlight" is reasoning, so "given" counts only next to "answer".
_LEAK_PATTERNS = (
    r"\bhint(?:s|ed)?\b",
    r"\b(?:was|were|am|are|is|been|'m|'re)\s+told\b",
    r"\byou(?:'ve|\s+have)?\s+told\s+(?:me|us)\b",
    r"\bas\s+told\b",
    r"\b(?:answer|solution)\s+(?:is|was|has\s+been|had\s+been|being)\s+(?:given|provided)\b",
    r"\b(?:answer|solution)\s+(?:given|provided)\b",
    # "the given answer choices" is about the choices, not the answer.
    r"\b(?:given|provided|supplied)\s+(?:correct\s+)?(?:answer|solution)\b(?!\s+(?:choices|options))",
    r"\bas\s+given\b",
    r"\bgiven\s+that\s+the\s+(?:correct\s+|right\s+)?answer\s+is\b",
    r"\bthe\s+prompt\b",
    r"\bas\s+instructed\b",
    r"\binstructions?\s+(?:say|says|said|state|states|tell|tells)\b",
)
# One alternation, so that the earliest leak in the text is the one reported.
_LEAK = re.compile("|".join(f"(?:{pattern})" for pattern in _LEAK_PATTERNS), re.IGNORECASE)
_WORD = re.compile(r"\w+")
# Six words in a row from the hint is a copy, not a coincidence: the hint's own shorter phrases
# ("the correct answer is B") are fine in a rationale.
_ECHO_WORDS = 6


def find_hint_leak(text: str, hint: str | None = None) -> str | None:
    """The phrase of `text` that gives away that the answer was hinted, or None if there is none."""
    match = _LEAK.search(text)
    if match:
        return match.group(0)
    return _hint_echo(text, hint) if hint else None


def _hint_echo(text: str, hint: str) -> str | None:
    """The first run of >= _ECHO_WORDS consecutive hint words in `text`, extended as far as it goes."""
    hint_words = [word.lower() for word in _WORD.findall(hint)]
    runs = {tuple(hint_words[i:i + _ECHO_WORDS]) for i in range(len(hint_words) - _ECHO_WORDS + 1)}
    words = list(_WORD.finditer(text))
    lowered = [word.group(0).lower() for word in words]
    for start in range(len(words) - _ECHO_WORDS + 1):
        if tuple(lowered[start:start + _ECHO_WORDS]) in runs:
            end = start + _ECHO_WORDS
            while end < len(words) and tuple(lowered[end - _ECHO_WORDS + 1:end + 1]) in runs:
                end += 1
            return text[words[start].start():words[end - 1].end()]
    return None
