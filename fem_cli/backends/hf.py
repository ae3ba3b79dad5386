"""The transformers backend: the CPU path, and the fallback everywhere.

Our own decode loop over the model's KV cache rather than `model.generate`, for four reasons:
the context shared by a task's prompts (system turn, worked example) is encoded once per call and
each prompt once for its `n` samples; the cache is written in place instead of re-concatenated
every token; every sequence draws from its own seeded generator (samples do not depend on batch
neighbours, so shards reproduce a full run); and a sequence leaves the batch as soon as its
`Answer: X` line is complete.

    backend = HFBackend(resolve_model("smollm2"), batch_size=32)
    completions = backend.generate(requests, SamplingSettings(n=4))
"""

from __future__ import annotations

import inspect
import os
from typing import Callable, Sequence

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from fem_cli.backends.base import (
    Completion,
    GenerationRequest,
    ProgressCallback,
    SamplingSettings,
    finish_text,
)
from fem_cli.models import ResolvedModel, load_model, load_tokenizer
from fem_cli.prompts import prompt_token_ids, render
from fem_cli.seeding import derive_seed

LayerKV = tuple[torch.Tensor, torch.Tensor]


def default_threads() -> int:
    # The CPUs this process may use (container limits included), not the host's count.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class PreallocatedLayer(DynamicLayer):
    """A cache layer that writes into a buffer sized for the whole generation. The stock dynamic
    layer concatenates, copying the entire cache once per generated token."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        rows, heads = key_states.shape[:2]
        self.key_buffer = key_states.new_empty(rows, heads, self.capacity, key_states.shape[-1])
        self.value_buffer = value_states.new_empty(rows, heads, self.capacity, value_states.shape[-1])
        self.rows = rows
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> LayerKV:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        self.key_buffer[: self.rows, :, self.length : end] = key_states
        self.value_buffer[: self.rows, :, self.length : end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def _expose(self) -> None:
        self.keys = self.key_buffer[: self.rows, :, : self.length]
        self.values = self.value_buffer[: self.rows, :, : self.length]

    def get_seq_length(self) -> int:
        return self.length

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self.key_buffer = self.key_buffer[: self.rows].repeat_interleave(repeats, dim=0)
            self.value_buffer = self.value_buffer[: self.rows].repeat_interleave(repeats, dim=0)
            self.rows *= repeats
            self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices` (ascending), moved up in place: only rows after the first dropped
        one are copied, and only their filled part."""
        if not self.is_initialized:
            return
        kept = len(indices)
        unchanged = int((indices == torch.arange(kept, device=indices.device)).cumprod(0).sum())
        if unchanged < kept:
            moved = indices[unchanged:]
            self.key_buffer[unchanged:kept, :, : self.length] = self.key_buffer[moved, :, : self.length]
            self.value_buffer[unchanged:kept, :, : self.length] = self.value_buffer[moved, :, : self.length]
        self.rows = kept
        self._expose()


class HFBackend:
    name = "hf"

    def __init__(
        self,
        model: ResolvedModel,
        dtype: str = "float32",
        batch_size: int = 32,
        threads: int | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        torch.set_num_threads(threads or default_threads())
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer(model, trust_remote_code=trust_remote_code)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_model(model, dtype=dtype, trust_remote_code=trust_remote_code).to(self.device)
        self.num_layers = self.model.config.get_text_config(decoder=True).num_hidden_layers
        self.eos_ids = self._end_of_turn_ids()
        # Prefill needs the logits of the last position only; the rest would be a
        # (prompt length x vocabulary) matrix per prompt, computed and thrown away.
        accepts_logits_to_keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self.last_logits_only = {"logits_to_keep": 1} if accepts_logits_to_keep else {}

    def _end_of_turn_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return {i for i in ids if i is not None}

    def close(self) -> None:
        del self.model

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
        prompts_per_batch = max(1, self.batch_size // settings.n)
        results: list[list[Completion]] = [[] for _ in requests]
        done_requests = 0
        tokens_so_far = 0

        def report(new_tokens: int) -> None:
            nonlocal tokens_so_far
            tokens_so_far += new_tokens
            if on_progress:
                on_progress(done_requests, tokens_so_far)

        for context, members in by_context.items():
            context_kv = self._encode_context(list(context))
            # Similar lengths share a batch, so little compute goes to padding.
            order = sorted(members, key=lambda i: len(encoded[i][0]), reverse=True)
            for start in range(0, len(order), prompts_per_batch):
                batch = order[start : start + prompts_per_batch]
                completions = self._generate_batch(
                    context_kv,
                    len(context),
                    [encoded[i][0][len(context) :] for i in batch],
                    [requests[i].seed for i in batch],
                    settings,
                    report,
                )
                for index, prompt_completions in zip(batch, completions):
                    results[index] = prompt_completions
                done_requests += len(batch)
                report(0)
        return results

    @torch.inference_mode()
    def _encode_context(self, context: list[int]) -> list[LayerKV] | None:
        if not context:
            return None
        cache = DynamicCache()
        self.model(
            input_ids=torch.tensor([context], device=self.device), past_key_values=cache, use_cache=True,
            **self.last_logits_only,
        )
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _new_cache(self, context_kv: list[LayerKV] | None, rows: int, capacity: int) -> Cache:
        layers = [PreallocatedLayer(capacity) for _ in range(self.num_layers)]
        for layer, (keys, values) in zip(layers, context_kv or []):
            layer.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1))
        return Cache(layers=layers)

    @torch.inference_mode()
    def _generate_batch(
        self,
        context_kv: list[LayerKV] | None,
        context_length: int,
        prompts: list[list[int]],
        seeds: list[int],
        settings: SamplingSettings,
        report: Callable[[int], None],
    ) -> list[list[Completion]]:
        n = settings.n
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        # [shared context][left padding][prompt]: the padding is masked out and the positions
        # continue from the context, so each row sees exactly its own prompt.
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        prompt_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        attention = torch.cat([prompt_mask.new_ones(len(prompts), context_length), prompt_mask], dim=1)
        positions = (context_length + prompt_mask.cumsum(-1) - 1).clamp(min=0)
        cache = self._new_cache(context_kv, len(prompts), context_length + width + settings.max_new_tokens)
        out = self.model(
            input_ids=input_ids, attention_mask=attention, position_ids=positions, past_key_values=cache,
            use_cache=True, **self.last_logits_only,
        )
        # Sampling runs on the CPU with per-sequence CPU generators: same draws on any device.
        logits = out.logits[:, -1, :].float().cpu()
        if n > 1:
            # Copy each prompt's cache n times instead of encoding the prompt n times.
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)
            attention = attention.repeat_interleave(n, dim=0)
            positions = positions.repeat_interleave(n, dim=0)
        rows = len(prompts) * n
        generators = [
            torch.Generator().manual_seed(derive_seed(seeds[r // n], r % n)) for r in range(rows)
        ]
        generated: list[list[int]] = [[] for _ in range(rows)]
        finished: dict[int, Completion] = {}
        active = list(range(rows))  # row ids still decoding, in cache order
        next_position = positions[:, -1] + 1
        for _ in range(settings.max_new_tokens):
            tokens = self._sample(logits, [generators[r] for r in active], settings)
            report(len(active))
            keep = []
            for slot, row in enumerate(active):
                token = int(tokens[slot])
                if token in self.eos_ids:
                    finished[row] = self._completion(generated[row], settings, "stop", extra_tokens=1)
                    continue
                generated[row].append(token)
                text, cut = finish_text(self._decode(generated[row]), settings)
                if cut:
                    finished[row] = Completion(text=text, num_tokens=len(generated[row]), finish_reason="stop")
                    continue
                keep.append(slot)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                attention = attention[index]
                next_position = next_position[index]
                tokens = tokens[keep]
                active = [active[slot] for slot in keep]
            attention = torch.cat([attention, attention.new_ones(len(active), 1)], dim=1)
            out = self.model(
                input_ids=tokens[:, None].to(self.device),
                attention_mask=attention,
                position_ids=next_position[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            logits = out.logits[:, -1, :].float().cpu()
            next_position = next_position + 1
        for row in range(rows):
            if row not in finished:
                finished[row] = self._completion(generated[row], settings, "length")
        return [[finished[p * n + j] for j in range(n)] for p in range(len(prompts))]

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
