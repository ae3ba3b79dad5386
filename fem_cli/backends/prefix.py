"""Forward passes over rows that share a prefix: the prefix is encoded once, and each row's rest
against a copy of its cache. A task's prompts share the system turn and the worked example,
often most of each prompt, so encoding that once per call instead of once per row is most of the
work saved, in generation (hf.py) and in reading label probabilities (label_probs.py) alike.

    encoder = PrefixEncoder(model, tokenizer.pad_token_id)
    prefix_kv = encoder.encode_prefix(shared_ids)
    cache, rest_mask, last_logits = encoder.encode_rests(prefix_kv, len(shared_ids), rests)
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import torch
from transformers.cache_utils import Cache, DynamicCache

LayerKV = tuple[torch.Tensor, torch.Tensor]


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own (its last
    position gives the logits)."""
    if not rows:
        return 0
    limit = min(len(row) for row in rows) - 1
    first = rows[0]
    shared = 0
    while shared < limit and all(row[shared] == first[shared] for row in rows):
        shared += 1
    return shared


class PrefixEncoder:
    """A causal LM's forward across transformers versions, returning next-token logits."""

    def __init__(self, model: Any, pad_token_id: int) -> None:
        self.model = model
        self.pad = pad_token_id
        self.device = next(model.parameters()).device
        parameters = inspect.signature(model.forward).parameters
        # Only the last position's logits are read; the rest would be a (length x vocabulary)
        # matrix per row, computed and thrown away.
        self.last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
        # transformers 5.2x renamed `past_key_values` to `cache` (the old name goes in 5.40).
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"

    def forward(self, input_ids: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor, cache: Cache, **extra) -> torch.Tensor:
        """Next-token logits of every row, as float32 on the CPU (sampling runs there with
        per-sequence CPU generators, so draws are the same on any device)."""
        out = self.model(
            input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
            position_ids=positions.to(self.device), use_cache=True, **{self.cache_argument: cache}, **extra,
        )
        return out.logits[:, -1, :].float().cpu()

    @torch.inference_mode()
    def encode_prefix(self, prefix: list[int]) -> list[LayerKV]:
        if not prefix:
            return []
        cache = DynamicCache()
        ids = torch.tensor([prefix])
        self.forward(ids, torch.ones_like(ids), torch.arange(len(prefix))[None], cache, **self.last_logits_only)
        return [(layer.keys, layer.values) for layer in cache.layers]

    @torch.inference_mode()
    def encode_rests(self, prefix_kv: list[LayerKV], prefix_length: int, rests: Sequence[list[int]]) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
        """Encode each row's tokens after the prefix: [prefix][left padding][rest], padding masked
        and positions continuing from the prefix. Returns the cache, the rests' mask and each
        row's last-position logits."""
        width = max(len(rest) for rest in rests)
        input_ids = torch.tensor([[self.pad] * (width - len(rest)) + list(rest) for rest in rests])
        rest_mask = torch.tensor([[0] * (width - len(rest)) + [1] * len(rest) for rest in rests])
        attention = torch.cat([rest_mask.new_ones(len(rests), prefix_length), rest_mask], dim=1)
        positions = (prefix_length + rest_mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        for index, (keys, values) in enumerate(prefix_kv):
            cache.update(keys.expand(len(rests), -1, -1, -1), values.expand(len(rests), -1, -1, -1), index)
        logits = self.forward(input_ids, attention, positions, cache, **self.last_logits_only)
        return cache, rest_mask, logits
