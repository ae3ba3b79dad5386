"""The `loglik` protocol: lm-evaluation-harness's multiple-choice scoring, reproduced.

Each choice is scored by the log-likelihood of its continuation given the question's context,
on plain text (no chat template, as lm-eval's default). `acc` takes the choice with the highest
log-likelihood, `acc_norm` the highest log-likelihood per character of the choice (lm-eval's
`len(choice)`, the leading space not counted). The prompt formats are lm-eval's, zero-shot; each
task declares its own (`TaskSpec.loglik_format`, see fem_cli.tasks.loglik_formats), and a task
without one is refused rather than scored in another task's format.

Tokenization is lm-eval's `HFLM`: context and context + continuation are encoded with the
tokenizer's own default for special tokens (BOS where the tokenizer adds one), and the
continuation's tokens are the tail of the whole after the context's length; trailing spaces of a
context move to its continuation. Per-choice log-likelihoods agree with lm-eval's within 1e-3
(bench/eval_loglik.py checks it).

Faster than lm-eval, which runs context + continuation once per choice: here a question's context
is encoded once and its choices' tokens follow it in the same row, each choice masked from the
others (a tree attention mask), so a batch of questions is one forward pass and logits are only
computed where a continuation token is predicted. A prefix that many contexts start with
(MMLU's "The following are multiple choice questions (with answers) about <subject>.", 15 % of
its tokens) is encoded once per call, and every row that starts with it reads its keys and
values from a cache.

    fem evaluate --model smollm2 --task arc_easy,openbookqa --protocol loglik --out eval/loglik
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
import torch
from transformers.cache_utils import DynamicCache

from fem_cli import runtime
from fem_cli.backends.packed_linear import pack_linear_layers
from fem_cli.backends.prefix import LayerKV, cache_argument, cached_prefix_lengths
from fem_cli.evaluation.config import EvaluateConfig
from fem_cli.evaluation.metrics import accuracy_summary, softmax, subject_breakdown
from fem_cli.lengths import model_max_length
from fem_cli.models import ResolvedModel, load_model, load_tokenizer
from fem_cli.records import EvalRecord, Question
from fem_cli.tasks import loglik_format
from fem_cli.tasks.loglik_formats import ChoiceRequest
from fem_cli.timings import loading

# The loglik protocol's confidence: the softmax over the choices' log-likelihoods.
CHOICE_SOFTMAX = "choice_softmax"


def choice_request(task: str, question: Question) -> ChoiceRequest:
    """`question` in its task's loglik format (a task's own, see `TaskSpec.loglik_format`)."""
    return loglik_format(task)(question)


def prefix_token_id(tokenizer: Any) -> int:
    """lm-eval's conditioning token for an empty context: BOS, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode(tokenizer: Any, text: str) -> list[int]:
    # lm-eval's HFLM.tok_encode with add_bos_token unset: the tokenizer's default special tokens,
    # except for text that already starts with the prefix token.
    already_prefixed = text.startswith(tokenizer.decode(prefix_token_id(tokenizer)))
    return tokenizer.encode(text, add_special_tokens=not already_prefixed)


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) exactly as lm-eval's `_encode_pair` makes them."""
    if not context:
        return [prefix_token_id(tokenizer)], tokenizer.encode(continuation, add_special_tokens=False)
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = encode(tokenizer, context + continuation)
    context_ids = encode(tokenizer, context)
    if len(whole) <= len(context_ids):
        # The continuation merged into the context's last token (lm-eval stops with an assertion
        # here): score the continuation's own tokens instead.
        return context_ids, tokenizer.encode(continuation, add_special_tokens=False)
    return context_ids, whole[len(context_ids):]


def encode_request(tokenizer: Any, request: ChoiceRequest) -> tuple[list[int], list[list[int]]]:
    pairs = [encode_pair(tokenizer, request.context, continuation) for continuation in request.continuations]
    # The context is encoded on its own, so every choice of a question shares the same context tokens.
    return pairs[0][0], [continuation for _, continuation in pairs]


@dataclasses.dataclass
class PackedBatch:
    """The rows of one forward pass over several questions (see `pack`)."""

    ids: list[list[int]]
    positions: list[list[int]]
    segments: list[list[int]]  # per token: -1 padding, 0 context, i + 1 a token of choice i
    targets: list[list[int]]  # per choice token: the token after it (padding elsewhere)
    span: int  # width of the block of choice tokens after the contexts


def pack(batch: list[tuple[list[int], list[list[int]]]], pad: int, cached: Sequence[int] | None = None) -> PackedBatch:
    """Row q: question q's context after its first `cached[q]` tokens (a prefix read from a
    cache), left-padded so that every context ends in the same column, then all its choices'
    tokens side by side (each choice without its last token, which predicts nothing),
    right-padded. Choice positions restart after the context, and the mask built from
    `segments` lets a choice see only the context and itself: each choice reads the context as
    if alone, while the context is encoded once for all of them."""
    cached = cached or [0] * len(batch)
    width = max(len(context) - skip for (context, _), skip in zip(batch, cached))
    span = max(sum(len(choice) - 1 for choice in choices) for _, choices in batch)
    packed = PackedBatch([], [], [], [], span)
    for (context, choices), skip in zip(batch, cached):
        own = context[skip:]
        left, right = width - len(own), span - sum(len(choice) - 1 for choice in choices)
        packed.ids.append([pad] * left + own + [t for c in choices for t in c[:-1]] + [pad] * right)
        packed.positions.append(
            [0] * left + list(range(skip, len(context))) + [len(context) + j for c in choices for j in range(len(c) - 1)] + [0] * right
        )
        packed.segments.append([-1] * left + [0] * len(own) + [i + 1 for i, c in enumerate(choices) for _ in c[:-1]] + [-1] * right)
        packed.targets.append([t for c in choices for t in c[1:]] + [pad] * right)
    return packed


class _TailOnly(torch.nn.Module):
    """`inner` on the last `keep` positions; zeros before them."""

    def __init__(self, inner: torch.nn.Module, keep: int) -> None:
        super().__init__()
        self.inner, self.keep = inner, keep

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(hidden)
        out[:, -self.keep :] = self.inner(hidden[:, -self.keep :])
        return out


@contextlib.contextmanager
def last_mlp_on_tail(model: Any, keep: int):
    """For the forward passes inside, the last decoder layer's MLP runs on the last `keep`
    positions only. After the last layer a position feeds nothing but the output layer, which
    reads only the last `logits_to_keep` positions, so the other positions' MLP is wasted work
    (one layer's MLP: ~2.5 % of SmolLM2's linear layers). A model without `layers[-1].mlp` in its
    decoder runs unchanged."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    mlp = getattr(layers[-1], "mlp", None) if layers else None
    if mlp is None:
        yield
        return
    layers[-1].mlp = _TailOnly(mlp, keep)
    try:
        yield
    finally:
        layers[-1].mlp = mlp


class LoglikScorer:
    """Sums of continuation log-probabilities, many questions per forward pass.

        scorer = LoglikScorer(load_model("smollm2"), load_tokenizer("smollm2"), batch_size=16)
        scorer.score([ChoiceRequest("Question: 2+2?\\nAnswer:", ["4", "5"])])  # -> [[-1.2, -3.4]]

    A prefix is encoded once and read from a cache when at least `min_sharing` contexts of a
    call start with it: on MMLU validation 8 saves 15.9 % of the tokens and encodes 0.9 % (97
    subject lines); 2 saves 19.3 % but encodes 5.9 % (434 prefixes, mostly shared by a pair).
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, min_sharing: int = 8) -> None:
        if min_sharing < 2:
            raise ValueError(f"min_sharing must be 2 or more (a prefix shared by several contexts), got {min_sharing}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.min_sharing = min_sharing
        self.device = next(model.parameters()).device
        self.cache_argument = cache_argument(model)

    def score(self, requests: Sequence[ChoiceRequest], on_progress: Callable[[int], None] | None = None) -> list[list[float]]:
        """Per request, the log-likelihood of each choice's continuation, in choice order."""
        encoded = [encode_request(self.tokenizer, request) for request in requests]
        cached = cached_prefix_lengths([context for context, _ in encoded], self.min_sharing)
        prefixes = self._encode_prefixes(sorted({tuple(context[:skip]) for (context, _), skip in zip(encoded, cached) if skip}))
        # Similar row lengths (the context after its cached prefix, then the choice tokens, see
        # `pack`) share a batch, so little compute goes to padding.
        order = sorted(range(len(encoded)), key=lambda i: cached[i] - len(encoded[i][0]) - sum(len(c) - 1 for c in encoded[i][1]))
        results: list[list[float]] = [[] for _ in encoded]
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            scored = self._score_batch([encoded[i] for i in batch], [cached[i] for i in batch], prefixes)
            for index, logliks in zip(batch, scored):
                results[index] = logliks
            if on_progress:
                on_progress(min(start + self.batch_size, len(order)))
        return results

    @torch.inference_mode()
    def _score_batch(
        self, batch: list[tuple[list[int], list[list[int]]]], cached: list[int], prefixes: dict[tuple[int, ...], list[LayerKV]]
    ) -> list[list[float]]:
        packed = pack(batch, self.tokenizer.pad_token_id, cached)
        past: dict[str, Any] = {"use_cache": False}
        if max(cached):
            rows = [prefixes[tuple(context[:skip])] if skip else None for (context, _), skip in zip(batch, cached)]
            past = {"use_cache": True, self.cache_argument: self._rows_cache(rows, max(cached))}
        # The last context token predicts every choice's first token; the rest are choice tokens.
        keep = packed.span + 1
        with last_mlp_on_tail(self.model, keep):
            out = self.model(
                input_ids=torch.tensor(packed.ids, device=self.device),
                attention_mask=self._choice_mask(torch.tensor(packed.segments, device=self.device), cached),
                position_ids=torch.tensor(packed.positions, device=self.device),
                logits_to_keep=keep,
                **past,
            )
        logits = out.logits.float()
        first = torch.log_softmax(logits[:, 0, :], dim=-1).cpu()
        choice_logits = logits[:, 1:, :]
        targets = torch.tensor(packed.targets, device=self.device)
        # gather - logsumexp = log_softmax at the targets, without a second vocabulary-sized tensor.
        rest = (choice_logits.gather(-1, targets[..., None])[..., 0] - choice_logits.logsumexp(-1)).cpu().tolist()
        results = []
        for q, (_, choices) in enumerate(batch):
            logliks, at = [], 0
            for choice in choices:
                logliks.append(float(first[q, choice[0]]) + sum(rest[q][at : at + len(choice) - 1]))
                at += len(choice) - 1
            results.append(logliks)
        return results

    @torch.inference_mode()
    def _encode_prefixes(self, prefixes: list[tuple[int, ...]]) -> dict[tuple[int, ...], list[LayerKV]]:
        """Each prefix's keys and values per layer, `batch_size` prefixes per forward pass (reading
        every weight for a dozen tokens would cost about what a prefix saves)."""
        encoded: dict[tuple[int, ...], list[LayerKV]] = {}
        for start in range(0, len(prefixes), self.batch_size):
            chunk = prefixes[start : start + self.batch_size]
            width = max(len(prefix) for prefix in chunk)
            # Padding on the right: each prefix's keys sit at positions 0.. as in its own context,
            # and causality keeps the padding out of them.
            ids = torch.tensor([list(prefix) + [self.tokenizer.pad_token_id] * (width - len(prefix)) for prefix in chunk], device=self.device)
            cache = DynamicCache()
            self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **{self.cache_argument: cache})
            for row, prefix in enumerate(chunk):
                encoded[prefix] = [(layer.keys[row, :, : len(prefix)], layer.values[row, :, : len(prefix)]) for layer in cache.layers]
        return encoded

    def _rows_cache(self, rows: list[list[LayerKV] | None], width: int) -> DynamicCache:
        """A cache whose row q holds its prefix's keys and values in the first columns of `width`
        (zeros after them, and for a row without one: the mask hides those columns)."""
        cache = DynamicCache()
        some = next(row for row in rows if row is not None)
        for index, (keys, _) in enumerate(some):
            layer_keys = keys.new_zeros(len(rows), keys.shape[0], width, keys.shape[2])
            layer_values = torch.zeros_like(layer_keys)
            for q, row in enumerate(rows):
                if row is not None:
                    length = row[index][0].shape[1]
                    layer_keys[q, :, :length] = row[index][0]
                    layer_values[q, :, :length] = row[index][1]
            cache.update(layer_keys, layer_values, index)
        return cache

    def _choice_mask(self, segment: torch.Tensor, cached: list[int]) -> torch.Tensor:
        """Additive 4D attention mask (batch, 1, query, key): a query sees its row's cached prefix,
        and earlier keys of the context and of its own segment. Every query also sees itself,
        so that padding rows are never fully masked (fully masked rows turn into NaN)."""
        rows, length = segment.shape
        causal = torch.ones(length, length, dtype=torch.bool, device=self.device).tril()
        key, query = segment[:, None, :], segment[:, :, None]
        allowed = causal & (key >= 0) & ((key == 0) | (key == query))
        allowed |= torch.eye(length, dtype=torch.bool, device=self.device)
        width = max(cached)
        prefix_visible = torch.arange(width, device=self.device)[None, :] < torch.tensor(cached, device=self.device)[:, None]
        allowed = torch.cat([prefix_visible[:, None, :].expand(rows, length, width), allowed], dim=-1)
        dtype = self.model.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=self.device).masked_fill(~allowed, torch.finfo(dtype).min)
        return mask[:, None, :, :]


def predictions(logliks: Sequence[float], choices: Sequence[str]) -> tuple[int, int, float]:
    """(acc choice, acc_norm choice, softmax probability of the acc choice); ties go to the first
    choice, as numpy's argmax in lm-eval."""
    values = np.asarray(logliks, dtype=np.float64)
    lengths = np.asarray([max(len(choice), 1) for choice in choices], dtype=np.float64)
    best, best_norm = int(np.argmax(values)), int(np.argmax(values / lengths))
    return best, best_norm, softmax(logliks)[best]


class LoglikEvaluator:
    """Scores tasks with the loglik protocol and summarizes acc and acc_norm."""

    confidence_source = CHOICE_SOFTMAX
    # Nothing is generated: the context and the longest choice must fit.
    max_new_tokens = 0

    def __init__(self, scorer: LoglikScorer, seed: int, resamples: int, max_length: int | None = None) -> None:
        self.scorer = scorer
        self.max_length = max_length  # positions the model takes (None: no limit known)
        self.seed = seed
        self.resamples = resamples
        self.settings: dict[str, Any] = {"engine": "transformers", "batch_size": scorer.batch_size}

    @classmethod
    def from_config(cls, cfg: EvaluateConfig, model: ResolvedModel) -> "LoglikEvaluator":
        dtype, dtype_why = runtime.resolve_dtype(cfg.dtype, "hf")
        with loading():
            tokenizer = load_tokenizer(model, trust_remote_code=cfg.trust_remote_code)
            lm = load_model(model, dtype=dtype, trust_remote_code=cfg.trust_remote_code).to(runtime.device())
            pack_linear_layers(lm)  # float32 on a CPU: oneDNN with packed weights (backends/packed_linear.py)
        evaluator = cls(
            LoglikScorer(lm, tokenizer, cfg.batch_size), cfg.seed, cfg.bootstrap_resamples, model_max_length(lm.config, tokenizer)
        )
        evaluator.settings["dtype"] = {"resolved": dtype, "why": dtype_why}
        return evaluator

    def prompt_tokens(self, task: str) -> Callable[[Question], int]:
        """Positions a question's row takes: its context and its longest choice."""

        def measure(question: Question) -> int:
            context, choices = encode_request(self.scorer.tokenizer, choice_request(task, question))
            return len(context) + max(len(choice) for choice in choices)

        return measure

    def evaluate(
        self, task: str, questions: Sequence[Question], on_progress: Callable[[int], None] | None = None
    ) -> tuple[list[EvalRecord], dict[str, Any]]:
        requests = [choice_request(task, question) for question in questions]
        all_logliks = self.scorer.score(requests, on_progress)
        records, correct_norm = [], []
        for question, request, logliks in zip(questions, requests, all_logliks):
            best, best_norm, confidence = predictions(logliks, request.choices)
            records.append(
                EvalRecord(
                    task=task, question_id=question.id, protocol="loglik", prompt=request.context,
                    outputs=request.continuations, extracted=list(question.labels),
                    prediction=question.labels[best], gold=question.answer,
                    correct=question.labels[best] == question.answer, confidence=confidence,
                    loglik=logliks, subject=question.subject,
                )
            )
            correct_norm.append(question.labels[best_norm] == question.answer)
        correct = [record.correct for record in records]
        metrics: dict[str, Any] = {
            "accuracy": accuracy_summary(correct, self.seed, self.resamples),
            "acc_norm": accuracy_summary(correct_norm, self.seed, self.resamples),
        }
        metrics.update(subject_breakdown(correct, [q.subject for q in questions]) or {})
        return records, metrics

    def close(self) -> None:
        del self.scorer
