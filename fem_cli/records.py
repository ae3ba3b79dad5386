"""Typed records for every JSONL stream fem reads or writes.

Each line of a fem JSONL file is one of these records, with a `schema_version` so that old files
are recognised instead of misread. Readers validate every line (see `fem_cli.jsonl`).

    questions  -> Question       (tasks, `fem data`)
    samples    -> Sample         (`fem sample`, E-step proposals)
    train      -> TrainExample   (`fem filter`, input of the M-step)
    eval       -> EvalRecord     (`fem evaluate`, one per question)
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1


class Record(BaseModel):
    # Unknown keys are errors: a typo in a hand-written file must not silently vanish.
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Question(Record):
    """One multiple-choice question in the normalized layout of `../shared/data`."""

    id: str = Field(min_length=1)
    question: str
    choices: list[str] = Field(min_length=2)
    labels: list[str] = Field(min_length=2)
    answer: str
    subject: Optional[str] = None

    @model_validator(mode="after")
    def _consistent(self) -> "Question":
        if len(self.choices) != len(self.labels):
            raise ValueError(f"{len(self.choices)} choices but {len(self.labels)} labels")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels are not unique: {self.labels}")
        if self.answer not in self.labels:
            raise ValueError(f"answer {self.answer!r} is not one of the labels {self.labels}")
        return self


class GenerationSettings(BaseModel):
    """What a completion was sampled with; stored on every Sample for reproducibility."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int


class Sample(Record):
    """One generated rationale + answer for one question (an E-step proposal draw)."""

    question_id: str
    sampler: str
    # "self": drawn from the un-hinted prompt; "rationalized": STaR's hinted second pass;
    # "hinted": PPS, every draw hinted; "reference": the task's own worked solution, written, not
    # generated (`--sampler reference`).
    stage: Literal["self", "rationalized", "hinted", "reference"]
    hinted: bool
    sample_index: int = Field(ge=0)
    # The messages actually sent to the model (with the hint when hinted; a reference solution,
    # sent to none, has the hint-free messages it answers) ...
    prompt: list[Message]
    # ... and the hint-free messages the M-step trains on (STaR trains without the hint).
    train_prompt: list[Message]
    # The hint sentence of a hinted prompt, kept so `fem filter` can spot rationales echoing it.
    hint: Optional[str] = None
    text: str
    # Tokens generated (0 for a reference solution: nothing was generated, no tokenizer loaded).
    num_tokens: int = Field(ge=0)
    finish_reason: Literal["stop", "length"]
    labels: list[str]
    # The choices as shown in `prompt` and `train_prompt`; `gold` and `extracted` refer to them.
    choices: list[str]
    gold: str
    extracted: Optional[str]
    # How `extracted` was read (fem_cli.answers): "label" (an answer line or label) or "content"
    # (the final sentence names one choice's text); None when unparsed and in older files.
    extraction: Optional[Literal["label", "content"]] = None
    # Whether the working before the answer line reaches the answer it gives
    # (fem_cli.answers.consistency); None when the working names no choice, and in older files.
    consistent: Optional[bool] = None
    reward: float
    # What wrote `text`: the model as given to `fem sample`, or "reference:<task>" for the task's
    # own worked solution ...
    model: str
    # ... and what it was sampled with (None: written, not sampled: a reference solution).
    generation: Optional[GenerationSettings]
    seed: int
    # `fem sample --permute-choices`: the question's original index of the choice shown at each
    # position (None: the question's own order).
    choice_order: Optional[list[int]] = None
    # `fem sample --verify`: the label distribution read after the hint-free prompt + this
    # completion up to its final answer marker (correct hinted samples only) ...
    unhinted_label_probs: Optional[list[float]] = None
    # ... and whether the answer stands without the hint: its argmax is the gold (hinted), the
    # reward itself (un-hinted). None: not verified.
    verified: Optional[bool] = None


class TrainExample(Record):
    """One M-step example: hint-free prompt messages and the target completion."""

    question_id: str
    prompt: list[Message] = Field(min_length=1)
    completion: str = Field(min_length=1)
    sampler: str
    stage: str


class EvalRecord(Record):
    """One evaluated question."""

    task: str
    question_id: str
    protocol: Literal["generative", "loglik"]
    prompt: str
    outputs: list[str]
    extracted: list[Optional[str]]
    # generative: how each output's answer was read ("label" or "content", None when unparsed);
    # None for loglik records and in older files.
    extraction: Optional[list[Optional[Literal["label", "content"]]]] = None
    prediction: Optional[str]
    gold: str
    correct: bool
    # generative: the label probability of the prediction at the answer position (hf backend;
    # the vote share on vLLM); loglik: softmax probability of the prediction. 0 when unparsed.
    confidence: Optional[float] = None
    loglik: Optional[list[float]] = None
    subject: Optional[str] = None
    # generative: normalized probability of each label at the answer position, averaged over the
    # samples that voted for the prediction (None: unparsed answer, or the vLLM backend).
    label_probs: Optional[list[float]] = None
    # generative: share of the samples that voted for the prediction (1 or 0 for one sample).
    vote_share: Optional[float] = None
    # generative: per output, whether its working reaches the answer it gives (fem_cli.answers
    # `consistency`; None: the working names no choice); None for loglik records and older files.
    consistent: Optional[list[Optional[bool]]] = None
    # Under --rotations / --swap-augment: the original index of the choice shown at each position.
    choice_order: Optional[list[int]] = None
