"""Forward passes over rows that share a prefix: the prefix is encoded once and kept once, and
every row attends to it without a copy of its own. A task's prompts share the system turn and the
worked example, often most of each prompt, in generation (hf.py) and in reading label
probabilities (label_probs.py) alike.

On a CPU a decode step is bound by memory reads: the weights, then each row's keys and values.
A row's cache holding its own copy of a 300-token prefix read that prefix once per row per step;
here each layer's attention reads it once per step for all rows (as cascade attention does): the
queries of every row meet the prefix keys in one matrix product, their own tokens' keys in
another, and one softmax spans both. The cache holds each row's own tokens only.

    encoder = PrefixEncoder(model, tokenizer.pad_token_id)
    prefix = encoder.encode_prefix(shared_ids)
    cache, rest_mask, last_logits = encoder.encode_rests(prefix, rests)
    next_logits = encoder.forward(next_ids, rest_attention, positions, cache, prefix)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

LayerKV = tuple[torch.Tensor, torch.Tensor]

ATTENTION = "fem_shared_prefix"


@dataclass
class SharedPrefix:
    """Each layer's keys and values of the prefix, [1, kv heads, length, head dim]; `reads`
    counts the layers that attended to it in the last forward pass."""

    layers: list[LayerKV]
    length: int
    reads: int = field(default=0, compare=False)


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


def cached_prefix_lengths(rows: Sequence[Sequence[int]], min_sharing: int) -> list[int]:
    """Per row, the length of the longest prefix that at least `min_sharing` rows (itself
    included) start with, leaving the row at least one token of its own. In token order the rows
    that share a prefix are neighbours, so each window of `min_sharing` neighbours shares the
    common prefix of its first and last row."""
    lengths = [0] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: list(rows[i]))
    for start in range(len(order) - min_sharing + 1):
        window = order[start : start + min_sharing]
        first, last = rows[window[0]], rows[window[-1]]
        common = next((i for i, (a, b) in enumerate(zip(first, last)) if a != b), min(len(first), len(last)))
        for i in window:
            lengths[i] = max(lengths[i], min(common, len(rows[i]) - 1))
    return lengths


def cache_argument(model: Any) -> str:
    """The name of `model.forward`'s cache argument: transformers 5.2x renamed
    `past_key_values` to `cache` (the old name goes in 5.40)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _own_tokens_visible(attention_mask: torch.Tensor | None, queries: int, keys: int) -> torch.Tensor | None:
    """Which of a row's own keys each query sees, broadcastable to [rows, heads, queries, keys];
    None: all. transformers hands over None when the 2-D mask has no padding, and then only
    causality remains."""
    if attention_mask is None:
        if queries == 1:
            return None
        query_at = torch.arange(keys - queries, keys)[:, None]
        return (torch.arange(keys)[None, :] <= query_at)[None, None]
    if attention_mask.dtype == torch.bool:
        return attention_mask
    return attention_mask == 0  # additive float mask: 0 where visible


def _own_tokens_bias(attention_mask, queries: int, keys: int, groups: int, dtype: torch.dtype) -> torch.Tensor | None:
    """The mask as a bias on the grouped scores, broadcastable to [rows, kv heads, groups x
    queries, keys]: 0 where visible, the dtype's lowest where not (the softmax then gives those
    keys exactly 0, as a masked fill of the scores would, at a fraction of the work)."""
    visible = _own_tokens_visible(attention_mask, queries, keys)
    if visible is None:
        return None
    bias = torch.zeros((), dtype=dtype).masked_fill(~visible.reshape(visible.shape[0], 1, queries, keys), torch.finfo(dtype).min)
    # Grouped rows are ordered (group, query): each group sees the queries' mask.
    return bias if queries == 1 else bias.repeat(1, 1, groups, 1)


def shared_prefix_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, fem_prefix=None, **kwargs):
    """Attention over [shared prefix][the row's own keys]: `key` and `value` hold the rows' own
    tokens; the prefix comes once for all rows in `fem_prefix`. Without it, plain sdpa."""
    if fem_prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    fem_prefix.reads += 1
    prefix_keys, prefix_values = fem_prefix.layers[module.layer_idx] if fem_prefix.layers else (None, None)
    rows, heads, queries, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    # The queries of a kv head's groups side by side, [rows, kv heads, groups x queries, dim]: one
    # batched product per row with its own keys, no copy of them per group. Scaled here, on the
    # queries, rather than on the (larger) scores.
    grouped = query.reshape(rows, kv_heads, groups * queries, dim) * scaling
    own_scores = torch.matmul(grouped, key.transpose(-1, -2))  # [rows, kv, g x q, own]
    bias = _own_tokens_bias(attention_mask, queries, key.shape[2], groups, own_scores.dtype)
    if bias is not None:
        own_scores += bias
    if prefix_keys is None:
        weights = torch.softmax(own_scores, dim=-1, dtype=torch.float32).to(query.dtype)
        output = torch.matmul(weights, value)
    else:
        # Every row's queries against one copy of the prefix: [kv heads, rows x groups x queries, dim].
        flat = grouped.transpose(0, 1).reshape(kv_heads, rows * groups * queries, dim)
        prefix_scores = torch.bmm(flat, prefix_keys[0].transpose(-1, -2))
        prefix_scores = prefix_scores.view(kv_heads, rows, groups * queries, -1).transpose(0, 1)
        weights = torch.softmax(torch.cat([prefix_scores, own_scores], dim=-1), dim=-1, dtype=torch.float32).to(query.dtype)
        length = prefix_keys.shape[2]
        prefix_weights = weights[..., :length].transpose(0, 1).reshape(kv_heads, rows * groups * queries, length)
        from_prefix = torch.bmm(prefix_weights, prefix_values[0]).view(kv_heads, rows, groups * queries, dim).transpose(0, 1)
        output = from_prefix + torch.matmul(weights[..., length:], value)
    return output.reshape(rows, heads, queries, dim).transpose(1, 2).contiguous(), None


class PrefixEncoder:
    """A causal LM's forward across transformers versions, with an optional shared prefix,
    returning next-token logits."""

    def __init__(self, model: Any, pad_token_id: int) -> None:
        self.model = model
        self.pad = pad_token_id
        self.device = next(model.parameters()).device
        self.num_layers = model.config.get_text_config(decoder=True).num_hidden_layers
        AttentionInterface.register(ATTENTION, shared_prefix_attention)
        AttentionMaskInterface.register(ATTENTION, sdpa_mask)
        # Without a prefix it is sdpa, so the model serves any other caller unchanged.
        model.set_attn_implementation(ATTENTION)
        parameters = inspect.signature(model.forward).parameters
        # Only the last position's logits are read; the rest would be a (length x vocabulary)
        # matrix per row, computed and thrown away.
        self.last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
        self.cache_argument = cache_argument(model)

    def forward(self, input_ids: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor, cache: Cache, prefix: SharedPrefix, **extra) -> torch.Tensor:
        """Next-token logits of every row, as float32 on the CPU (sampling runs there with
        per-sequence CPU generators, so draws are the same on any device). `attention` masks
        the rows' own columns; every row sees the whole prefix."""
        prefix.reads = 0
        out = self.model(
            input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
            position_ids=positions.to(self.device), use_cache=True, fem_prefix=prefix,
            **{self.cache_argument: cache}, **extra,
        )
        # A model whose attention does not go through transformers' attention interface would
        # ignore the prefix and compute something else without a word.
        if prefix.reads != self.num_layers:
            raise RuntimeError(f"{type(self.model).__name__}: {prefix.reads} of {self.num_layers} layers read the shared prefix")
        return out.logits[:, -1, :].float().cpu()

    @torch.inference_mode()
    def encode_prefix(self, prefix: list[int]) -> SharedPrefix:
        if not prefix:
            return SharedPrefix(layers=[], length=0)
        cache = DynamicCache()
        ids = torch.tensor([prefix])
        self.forward(ids, torch.ones_like(ids), torch.arange(len(prefix))[None], cache, SharedPrefix(layers=[], length=0), **self.last_logits_only)
        return SharedPrefix(layers=[(layer.keys, layer.values) for layer in cache.layers], length=len(prefix))

    @torch.inference_mode()
    def encode_rests(self, prefix: SharedPrefix, rests: Sequence[list[int]]) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
        """Encode each row's tokens after the prefix, left-padded: [padding][rest], positions
        continuing from the prefix. Returns the rows' cache (their own tokens only), the rests'
        mask and each row's last-position logits."""
        width = max(len(rest) for rest in rests)
        input_ids = torch.tensor([[self.pad] * (width - len(rest)) + list(rest) for rest in rests])
        rest_mask = torch.tensor([[0] * (width - len(rest)) + [1] * len(rest) for rest in rests])
        positions = (prefix.length + rest_mask.cumsum(-1) - 1).clamp(min=prefix.length)
        cache = DynamicCache()
        logits = self.forward(input_ids, rest_mask, positions, cache, prefix, **self.last_logits_only)
        return cache, rest_mask, logits
