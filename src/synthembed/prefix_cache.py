"""One copy of the prompt prefix that every row of a generation batch shares.

A batch of queries prompts shares its system message and worked examples (about 400 tokens of
SmolLM2's ~600) and differs only in its document. The plain way to reuse the prefix's KV cache
(``DynamicCache.batch_repeat_interleave``) copies it once per row, and every decoding step then
concatenates each row's whole cache again and attends over each copy: measured on the 2-core CPU, a
decoding step of 16 rows spent 30 % of its time in that concatenation and 15 % in attention.

Here the prefix's keys and values are kept once (batch 1) and each row's own tokens go into a buffer
filled in place. The prompt's own tokens attend through SDPA over one copy of the prefix per row,
made once; every decoding step scores the rows' queries against the single prefix and against their
own tokens, with one softmax over both: the same attention, without the copies at every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import AttentionInterface, Cache, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION = "synthembed_shared_prefix"


@dataclass(frozen=True)
class PrefixedKV:
    """Keys (or values) of one layer: the shared ``prefix`` [1, kv_heads, P, dim] and the rows'
    ``own`` tokens [rows, kv_heads, S, dim]."""

    prefix: torch.Tensor
    own: torch.Tensor


class SharedPrefixLayer(DynamicLayer):
    """A layer's cache: the prefix once, each row's tokens in a buffer of ``capacity`` positions."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, rows: int, capacity: int):
        super().__init__()
        self.prefix_keys, self.prefix_values = keys, values
        shape = (rows, keys.shape[1], capacity, keys.shape[3])
        self.keys, self.values = keys.new_empty(shape), values.new_empty(shape)  # the rows' own tokens
        self.length = 0
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[PrefixedKV, PrefixedKV]:
        end = self.length + key_states.shape[-2]
        self.keys[:, :, self.length : end] = key_states
        self.values[:, :, self.length : end] = value_states
        self.length = end
        return (
            PrefixedKV(self.prefix_keys, self.keys[:, :, :end]),
            PrefixedKV(self.prefix_values, self.values[:, :, :end]),
        )

    def repeat_rows(self, copies: torch.Tensor) -> None:
        """Give row i ``copies[i]`` rows with its tokens so far: samples of one prompt continue it apart."""
        self.keys = self.keys.repeat_interleave(copies, dim=0)
        self.values = self.values.repeat_interleave(copies, dim=0)

    def get_seq_length(self) -> int:
        return self.prefix_keys.shape[-2] + self.length


def shared_prefix_cache(prefix: DynamicCache, rows: int, capacity: int) -> Cache:
    """A cache of ``rows`` rows that continue the batch-1 ``prefix`` by at most ``capacity`` tokens each."""
    return Cache(
        layers=[SharedPrefixLayer(layer.keys, layer.values, rows, capacity) for layer in prefix.layers]
    )


def shared_prefix_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor | PrefixedKV,
    value: torch.Tensor | PrefixedKV,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention over the shared prefix and each row's own tokens (a plain cache goes to SDPA).

    The prompt's own tokens (many queries a row) go through SDPA's fused kernel over one copy of the
    prefix per row, made once. Each decoding step (one query a row) scores the rows' queries against
    the single prefix copy: query heads that share a key/value head and the rows are folded into one
    matrix per key/value head, then one softmax runs over prefix and own positions together.
    ``attention_mask`` is SDPA's boolean mask over prefix then own positions.
    """
    if not isinstance(key, PrefixedKV):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout
        )
    rows, heads, length, dim = query.shape
    if length > 1:
        keys = torch.cat([key.prefix.expand(rows, -1, -1, -1), key.own], dim=-2)
        values = torch.cat([value.prefix.expand(rows, -1, -1, -1), value.own], dim=-2)
        return sdpa_attention_forward(
            module, query, keys, values, attention_mask, scaling=scaling, dropout=dropout
        )
    kv_heads = key.own.shape[1]
    # Scores, softmax and weighted sum in float32, as SDPA's kernels accumulate: bfloat16 keeps 8
    # significant bits, so a score of 20 would be off by up to 0.06 and its weight by up to 6 %.
    folded = query.float().reshape(rows, kv_heads, heads // kv_heads, dim)
    by_head = folded.transpose(0, 1).reshape(kv_heads, -1, dim)
    prefix_keys, own_keys = key.prefix[0].float(), key.own.float()
    prefix_scores = (by_head @ prefix_keys.transpose(-1, -2)).view(kv_heads, rows, folded.shape[2], -1)
    scores = torch.cat([prefix_scores.transpose(0, 1), folded @ own_keys.transpose(-1, -2)], dim=-1)
    scores.mul_(dim**-0.5 if scaling is None else scaling)
    if attention_mask is not None:
        scores.masked_fill_(~attention_mask, float("-inf"))
    probs = scores.softmax(dim=-1)
    shared = key.prefix.shape[-2]
    prefix_probs = probs[..., :shared].transpose(0, 1).reshape(kv_heads, -1, shared)
    output = (prefix_probs @ value.prefix[0].float()).view(kv_heads, rows, -1, dim).transpose(0, 1)
    output = output + probs[..., shared:] @ value.own.float()
    return output.to(value.own.dtype).reshape(rows, heads, 1, dim).transpose(1, 2).contiguous(), None


def full_mask(*args, **kwargs) -> torch.Tensor | None:
    """SDPA's boolean mask, never skipped: shared-prefix attention always needs the padding masked."""
    return sdpa_mask(*args, **(kwargs | {"allow_is_causal_skip": False}))


AttentionInterface.register(ATTENTION, shared_prefix_attention)
AttentionMaskInterface.register(ATTENTION, full_mask)


@contextmanager
def shared_prefix_attention_on(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` with shared-prefix attention inside the block, its own implementation after."""
    own = model.config._attn_implementation
    model.set_attn_implementation(ATTENTION)
    if model.config._attn_implementation != ATTENTION:  # transformers only warns
        raise ValueError(f"{type(model).__name__} cannot switch its attention implementation")
    try:
        yield
    finally:
        model.set_attn_implementation(own)
