"""The transformers backend: the CPU path, and the fallback everywhere.

Our own decode loop over the model's KV cache rather than `model.generate`:
- the context shared by a task's prompts (system turn, worked example) is encoded once per call
  and kept once: every row attends to it without a copy of its own (prefix.py); each prompt is
  encoded once for its `n` samples;
- continuous batching: a sequence leaves the batch as soon as its `Answer: X` line is complete,
  and the next prompt takes its place at once, so the batch stays full;
- the cache is written in place, never re-concatenated per token;
- every sequence draws from its own seeded generator, so samples do not depend on which prompts
  share the batch, and shards reproduce a full run;
- on a CPU in float32, the linear layers run through oneDNN with their weights packed once
  (packed_linear.py): most of a step is those matrix products.

    backend = HFBackend(resolve_model("smollm2"), batch_size=32)
    completions = backend.generate(requests, SamplingSettings(n=4))
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer

from fem_cli import runtime
from fem_cli.backends.base import (
    LABEL_PROBS,
    Completion,
    GenerationRequest,
    LabelQuery,
    ProgressCallback,
    SamplingSettings,
    finish_text,
)
from fem_cli.backends.label_probs import LabelProbabilityScorer
from fem_cli.backends.packed_linear import pack_linear_layers
from fem_cli.backends.prefix import LayerKV, PrefixEncoder, SharedPrefix
from fem_cli.lengths import model_max_length
from fem_cli.models import ResolvedModel, load_model, load_tokenizer
from fem_cli.prompts import prompt_token_ids, render
from fem_cli.seeding import derive_seed

# Masked columns that every live row skips (left behind by finished rows) are dropped from the
# cache once there are this many: attention reads every column, masked or not.
DEAD_COLUMNS_TO_DROP = 32


class SlotLayer(DynamicLayer):
    """One layer's keys and values in a buffer of fixed row slots, written in place (the stock
    dynamic layer concatenates, copying the whole cache once per generated token). Every row has
    the same number of columns (the shared context is not among them: see prefix.py); a row's
    prompt ends where its first generated token starts, and the columns before it are masked out."""

    def __init__(self, max_rows: int, capacity: int) -> None:
        super().__init__()
        self.max_rows, self.capacity = max_rows, capacity
        self.rows = self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        heads = key_states.shape[1]
        # Zeros, not empty memory: masked columns are still multiplied (by a weight of 0), and
        # leftover bytes could read as NaN or infinity, which 0 does not cancel.
        self.key_buffer = key_states.new_zeros(self.max_rows, heads, self.capacity, key_states.shape[-1])
        self.value_buffer = value_states.new_zeros(self.max_rows, heads, self.capacity, value_states.shape[-1])
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> LayerKV:
        end = self.length + key_states.shape[-2]
        self._reserve(end)
        self.key_buffer[: self.rows, :, self.length : end] = key_states
        self.value_buffer[: self.rows, :, self.length : end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def _expose(self) -> None:
        self.keys = self.key_buffer[: self.rows, :, : self.length]
        self.values = self.value_buffer[: self.rows, :, : self.length]

    def _reserve(self, columns: int) -> None:
        if columns > self.capacity:
            self.capacity = max(columns, self.capacity * 3 // 2)
            if not self.is_initialized:
                return
            for name in ("key_buffer", "value_buffer"):
                old = getattr(self, name)
                new = old.new_zeros(old.shape[0], old.shape[1], self.capacity, old.shape[3])
                new[:, :, : self.length] = old[:, :, : self.length]
                setattr(self, name, new)

    def get_seq_length(self) -> int:
        return self.length

    def add_rows(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Append rows of prompt keys and values, in the last columns (self.length must already
        leave room for them)."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values)
        new = slice(self.rows, self.rows + keys.shape[0])
        for buffer, states in ((self.key_buffer, keys), (self.value_buffer, values)):
            buffer[new, :, self.length - keys.shape[2] : self.length] = states
        self.rows = new.stop
        self._expose()

    def empty_to(self, columns: int) -> None:
        """With no rows left, restart at `columns` columns."""
        self._reserve(columns)
        self.length = columns

    def drop_columns(self, start: int, end: int) -> None:
        for buffer in (self.key_buffer, self.value_buffer):
            buffer[: self.rows, :, start : self.length - (end - start)] = buffer[: self.rows, :, end : self.length].clone()
        self.length -= end - start
        self._expose()

    def fill_holes(self, holes: torch.Tensor, movers: torch.Tensor, kept: int) -> None:
        """Keep the first `kept` rows, rows `movers` taking the places of rows `holes` (all below
        `kept`): only as many rows are copied as have left, and only their filled part."""
        if len(holes):
            self.key_buffer[holes, :, : self.length] = self.key_buffer[movers, :, : self.length]
            self.value_buffer[holes, :, : self.length] = self.value_buffer[movers, :, : self.length]
        self.rows = kept
        self._expose()


@dataclass
class _Row:
    prompt: int  # index into the group's prompts
    sample: int
    generator: torch.Generator
    tokens: list[int] = field(default_factory=list)


class _DecodeBatch:
    """The rows being decoded together: their cache, attention mask, next positions and
    next-token logits, kept aligned as rows come and go."""

    def __init__(self, num_layers: int, max_rows: int, context_length: int, capacity: int) -> None:
        self.layers = [SlotLayer(max_rows, capacity) for _ in range(num_layers)]
        self.cache = Cache(layers=self.layers)
        self.context_length = context_length  # positions start after it
        for layer in self.layers:
            layer.empty_to(0)
        self.attention = torch.zeros(0, 0, dtype=torch.long)
        self.next_position = torch.zeros(0, dtype=torch.long)
        self.logits: torch.Tensor | None = None
        self.rows: list[_Row] = []

    @property
    def length(self) -> int:
        return self.layers[0].length

    def add(self, rows: list[_Row], layer_kv: list[LayerKV], prompt_mask: torch.Tensor, logits: torch.Tensor) -> None:
        """Add rows whose prefilled cache is their left-padded prompt of width W."""
        width = prompt_mask.shape[1]
        if width > self.length:
            # Prompts come longest first, so a prompt outgrows the columns only of an empty batch.
            assert not self.rows, "prompts must join the batch longest first"
            for layer in self.layers:
                layer.empty_to(width)
            self.attention = self.attention.new_zeros(0, self.length)
        for layer, (keys, values) in zip(self.layers, layer_kv):
            layer.add_rows(keys, values)
        gap = prompt_mask.new_zeros(len(rows), self.length - width)
        self.attention = torch.cat([self.attention, torch.cat([gap, prompt_mask], 1)])
        self.next_position = torch.cat([self.next_position, self.context_length + prompt_mask.sum(-1)])
        self.logits = logits if self.logits is None else torch.cat([self.logits, logits])
        self.rows += rows

    def keep(self, slots: list[int]) -> torch.Tensor:
        """Keep rows `slots` (ascending); the old slot of each row kept, in its new order. A row
        past the kept count moves into a slot that was left; the others stay where they are (a
        row's samples do not depend on its slot)."""
        kept, staying = len(slots), set(slots)
        holes = [slot for slot in range(kept) if slot not in staying]
        movers = [slot for slot in slots if slot >= kept]
        order = list(range(kept))
        for hole, mover in zip(holes, movers):
            order[hole] = mover
        index = torch.tensor(order, dtype=torch.long)
        holes_index, movers_index = torch.tensor(holes, dtype=torch.long), torch.tensor(movers, dtype=torch.long)
        for layer in self.layers:
            layer.fill_holes(holes_index, movers_index, kept)
        self.attention = self.attention[index]
        self.next_position = self.next_position[index]
        self.logits = self.logits[index] if self.logits is not None else None
        self.rows = [self.rows[slot] for slot in order]
        if not self.rows:
            for layer in self.layers:
                layer.empty_to(0)
            self.attention = self.attention[:, :0]
            return index
        # Leading columns that no live row attends to: what finished rows left.
        dead = int(self.attention.argmax(dim=1).min())
        if dead >= DEAD_COLUMNS_TO_DROP:
            for layer in self.layers:
                layer.drop_columns(0, dead)
            self.attention = self.attention[:, dead:]
        return index


class HFBackend:
    name = "hf"
    capabilities = frozenset({LABEL_PROBS})

    def __init__(
        self,
        model: ResolvedModel,
        dtype: str = "float32",
        batch_size: int = 32,
        trust_remote_code: bool = False,
    ) -> None:
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer(model, trust_remote_code=trust_remote_code)
        self.device = runtime.device()
        self.model = load_model(model, dtype=dtype, trust_remote_code=trust_remote_code).to(self.device)
        # float32 on a CPU: the linear layers' weights packed once for oneDNN (packed_linear.py).
        pack_linear_layers(self.model)
        self.num_layers = self.model.config.get_text_config(decoder=True).num_hidden_layers
        self.max_length = model_max_length(self.model.config, self.tokenizer)
        self.eos_ids = self._end_of_turn_ids()
        self.encoder = PrefixEncoder(self.model, self.tokenizer.pad_token_id)

    def _end_of_turn_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return {i for i in ids if i is not None}

    def close(self) -> None:
        del self.model

    def label_probabilities(self, queries: Sequence[LabelQuery]) -> list[list[float] | None]:
        scorer = LabelProbabilityScorer(self.model, self.tokenizer, self.batch_size, encoder=self.encoder)
        return scorer.score([(render(self.tokenizer, list(q.messages)), q.completion, q.labels) for q in queries])

    def _encode(self, request: GenerationRequest) -> tuple[list[int], int]:
        """The prompt's token ids and the length of its context: the tokens before the last
        message's content, which prompts of one task share (system turn, worked example). It
        depends on the request alone, so a shard splits prompts exactly as a full run does."""
        text = render(self.tokenizer, list(request.messages))
        ids = prompt_token_ids(self.tokenizer, text)
        start = text.rfind(request.messages[-1].content)
        if start <= 0:
            return ids, 0
        context = prompt_token_ids(self.tokenizer, text[:start])
        shared = 0
        while shared < min(len(context), len(ids) - 1) and context[shared] == ids[shared]:
            shared += 1
        return ids, shared

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        settings: SamplingSettings,
        on_progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        encoded = [self._encode(r) for r in requests]
        by_context: dict[tuple[int, ...], list[int]] = {}
        for index, (ids, shared) in enumerate(encoded):
            by_context.setdefault(tuple(ids[:shared]), []).append(index)
        results: list[list[Completion]] = [[] for _ in requests]
        done_requests = 0
        tokens_so_far = 0

        def report(new_tokens: int) -> None:
            nonlocal tokens_so_far
            tokens_so_far += new_tokens
            if on_progress:
                on_progress(done_requests, tokens_so_far)

        for context, members in by_context.items():
            # Longest prompts first: a prompt that joins later always fits in the columns the
            # running batch already has, so no live row's cache ever needs to move right.
            order = sorted(members, key=lambda i: len(encoded[i][0]), reverse=True)

            def finished(position: int, completions: list[Completion], order: list[int] = order) -> None:
                nonlocal done_requests
                results[order[position]] = completions
                done_requests += 1
                report(0)

            self._generate_group(
                list(context),
                [encoded[i][0][len(context) :] for i in order],
                [requests[i].seed for i in order],
                settings,
                finished,
                report,
            )
        return results

    @torch.inference_mode()
    def _prefill(self, context: SharedPrefix, prompt: list[int], n: int):
        """Encode one prompt after the shared context, once for its `n` samples: its cache, mask
        and logits, as `n` rows. One prompt at a time: no padding to compute, and a prompt's
        encoding never depends on which prompts join the batch with it."""
        cache, prompt_mask, logits = self.encoder.encode_rests(context, [prompt])
        layer_kv = [(layer.keys.expand(n, -1, -1, -1), layer.values.expand(n, -1, -1, -1)) for layer in cache.layers]
        return layer_kv, prompt_mask.expand(n, -1), logits.expand(n, -1)

    @torch.inference_mode()
    def _generate_group(
        self,
        context: list[int],
        prompts: list[list[int]],
        seeds: list[int],
        settings: SamplingSettings,
        finished: Callable[[int, list[Completion]], None],
        report: Callable[[int], None],
    ) -> None:
        """Decode prompts that share `context` with continuous batching: whenever `n` rows are
        free, the next prompt is encoded and joins the running batch."""
        n = settings.n
        max_rows = max(1, self.batch_size // n) * n
        shared = self.encoder.encode_prefix(context)
        batch = _DecodeBatch(self.num_layers, max_rows, len(context), len(prompts[0]) + settings.max_new_tokens)
        waiting = deque(range(len(prompts)))
        outputs: list[list[Completion | None]] = [[None] * n for _ in prompts]
        while waiting or batch.rows:
            admit = min(len(waiting), (max_rows - len(batch.rows)) // n)
            for _ in range(admit):
                p = waiting.popleft()
                rows = [_Row(p, j, torch.Generator().manual_seed(derive_seed(seeds[p], j))) for j in range(n)]
                batch.add(rows, *self._prefill(shared, prompts[p], n))
            tokens = self._sample(batch.logits, [row.generator for row in batch.rows], settings)
            report(len(batch.rows))
            keep = []
            for slot, row in enumerate(batch.rows):
                completion = self._advance(row, int(tokens[slot]), settings)
                if completion is None:
                    keep.append(slot)
                    continue
                outputs[row.prompt][row.sample] = completion
                if all(outputs[row.prompt]):
                    finished(row.prompt, outputs[row.prompt])  # type: ignore[arg-type]
            if len(keep) < len(batch.rows):
                tokens = tokens[batch.keep(keep)]
            if not batch.rows:
                continue
            batch.attention = torch.cat([batch.attention, batch.attention.new_ones(len(batch.rows), 1)], dim=1)
            batch.logits = self.encoder.forward(tokens[:, None], batch.attention, batch.next_position[:, None], batch.cache, shared)
            batch.next_position += 1

    def _advance(self, row: _Row, token: int, settings: SamplingSettings) -> Completion | None:
        """Append the sampled token; the row's completion if that ends it."""
        if token in self.eos_ids:
            return self._completion(row.tokens, settings, "stop", extra_tokens=1)
        row.tokens.append(token)
        text, cut = finish_text(self._decode(row.tokens), settings)
        if cut:
            return Completion(text=text, num_tokens=len(row.tokens), finish_reason="stop")
        if len(row.tokens) == settings.max_new_tokens:
            return self._completion(row.tokens, settings, "length")
        return None

    def _decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def _completion(self, token_ids: list[int], settings: SamplingSettings, reason: str, extra_tokens: int = 0) -> Completion:
        text, _ = finish_text(self._decode(token_ids), settings)
        return Completion(text=text, num_tokens=len(token_ids) + extra_tokens, finish_reason=reason)

    @staticmethod
    def _sample(logits: torch.Tensor, generators: list[torch.Generator], settings: SamplingSettings) -> torch.Tensor:
        if settings.temperature == 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits / settings.temperature, dim=-1)
        if settings.top_p < 1:
            sorted_probs, sorted_ids = probs.sort(dim=-1, descending=True)
            # Keep the smallest prefix whose mass reaches top_p (the top token always stays).
            outside = sorted_probs.cumsum(-1) - sorted_probs >= settings.top_p
            sorted_probs = sorted_probs.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, sorted_ids, sorted_probs)
        # Inverse-CDF sampling: one uniform per row from that row's own generator, then one
        # vectorized search. (torch.multinomial row by row cost more than the forward pass.)
        uniforms = torch.cat([torch.rand(1, generator=generator, dtype=torch.float64) for generator in generators])
        cdf = probs.double().cumsum(dim=-1)
        # right=True: a zero-probability token is never chosen, since its cdf equals its left neighbour's.
        tokens = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True)[:, 0]
        return tokens.clamp(max=probs.shape[-1] - 1)
