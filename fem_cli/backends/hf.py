"""The transformers backend: the CPU path, and the fallback everywhere.

Our own decode loop over the model's KV cache rather than `model.generate`, for three reasons:
the prompt is encoded once and its cache copied for the `n` samples; every sequence draws from its
own seeded generator (samples do not depend on batch neighbours, so shards reproduce a full run);
and a sequence leaves the batch as soon as its `Answer: X` line is complete.

    backend = HFBackend(resolve_model("smollm2"), batch_size=32)
    completions = backend.generate(requests, SamplingSettings(n=4))
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

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


def default_threads() -> int:
    # The CPUs this process may use (container limits included), not the host's count.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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
        self.eos_ids = self._end_of_turn_ids()

    def _end_of_turn_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return {i for i in ids if i is not None}

    def close(self) -> None:
        del self.model

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        settings: SamplingSettings,
        on_progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        encoded = [prompt_token_ids(self.tokenizer, render(self.tokenizer, r.messages)) for r in requests]
        # Similar lengths share a batch, so little compute goes to padding.
        order = sorted(range(len(requests)), key=lambda i: len(encoded[i]), reverse=True)
        prompts_per_batch = max(1, self.batch_size // settings.n)
        results: list[list[Completion]] = [[] for _ in requests]
        done_requests = 0
        tokens_so_far = 0
        for start in range(0, len(order), prompts_per_batch):
            batch = order[start : start + prompts_per_batch]

            def report(new_tokens: int) -> None:
                nonlocal tokens_so_far
                tokens_so_far += new_tokens
                if on_progress:
                    on_progress(done_requests, tokens_so_far)

            completions = self._generate_batch(
                [encoded[i] for i in batch], [requests[i].seed for i in batch], settings, report
            )
            for index, prompt_completions in zip(batch, completions):
                results[index] = prompt_completions
            done_requests += len(batch)
            report(0)
        return results

    @torch.inference_mode()
    def _generate_batch(
        self,
        prompts: list[list[int]],
        seeds: list[int],
        settings: SamplingSettings,
        report: "callable",
    ) -> list[list[Completion]]:
        n = settings.n
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True)
        cache = out.past_key_values
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
            cache = out.past_key_values
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
        return torch.stack(
            [torch.multinomial(probs[row], 1, generator=gen)[0] for row, gen in enumerate(generators)]
        )
