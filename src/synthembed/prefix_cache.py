"""One copy of the prompt prefix that every row of a generation batch shares.

A batch of queries prompts shares its system message and worked examples (about 400 tokens of
SmolLM2's ~600) and differs only in its document. The plain way to reuse the prefix's KV cache
(``DynamicCache.batch_repeat_interleave``) copies it once per row, and every decoding step then
concatenates each row's whole cache again and attends over each copy: measured on the 2-core CPU, a
decoding step of 16 rows spent 30 % of its time in that concatenation and 15 % in attention.

Here the prefix's keys and values are kept once (batch 1) and each row's own tokens go into a buffer
filled in place. The prompts' own tokens run packed, one row after another in a batch of one, so no
padding goes through the model (a fifth of the own tokens at batch 16 on a corpus's documents); each
row's stretch attends through SDPA over the prefix and its own tokens. Every decoding step scores the
rows' queries against the single prefix and against their own tokens, with one softmax over both: the
same attention, without the copies at every step.
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
class PackedKV:
    """Keys (or values) of one layer in a packed forward: the shared ``prefix`` [1, kv_heads, P, dim]
    and each packed row's own tokens so far, ``rows[i]`` [1, kv_heads, n_i, dim], in packing order."""

    prefix: torch.Tensor
    rows: list[torch.Tensor]


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
        # zeros, not empty: masked positions get weight 0, and 0 times a stray nan would still be nan
        self.keys, self.values = keys.new_zeros(shape), values.new_zeros(shape)  # the rows' own tokens
        self.length = 0
        self.packed: list[int] | None = None
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True

    def pack(self, lengths: list[int]) -> None:
        """Make the next update a packed one: row i's next ``lengths[i]`` tokens, one row after another
        in a batch of one, each row's ending at the same column (the shorter ones left-padded)."""
        self.packed = lengths

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[PrefixedKV, PrefixedKV] | tuple[PackedKV, PackedKV]:
        if self.packed is not None:
            return self.update_packed(key_states, value_states)
        end = self.length + key_states.shape[-2]
        self.keys[:, :, self.length : end] = key_states
        self.values[:, :, self.length : end] = value_states
        self.length = end
        return (
            PrefixedKV(self.prefix_keys, self.keys[:, :, :end]),
            PrefixedKV(self.prefix_values, self.values[:, :, :end]),
        )

    def update_packed(
        self, key_states: torch.Tensor, value_states: torch.Tensor
    ) -> tuple[PackedKV, PackedKV]:
        lengths, self.packed = self.packed, None
        end = self.length + max(lengths)
        keys, values = [], []
        for row, (k, v) in enumerate(
            zip(key_states.split(lengths, dim=-2), value_states.split(lengths, dim=-2), strict=True)
        ):
            start = end - k.shape[-2]
            self.keys[row, :, start:end] = k[0]
            self.values[row, :, start:end] = v[0]
            keys.append(self.keys[row : row + 1, :, start:end])
            values.append(self.values[row : row + 1, :, start:end])
        self.length = end
        return PackedKV(self.prefix_keys, keys), PackedKV(self.prefix_values, values)

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
    key: torch.Tensor | PrefixedKV | PackedKV,
    value: torch.Tensor | PrefixedKV | PackedKV,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention over the shared prefix and each row's own tokens (a plain cache goes to SDPA).

    The prompts' own tokens (``PackedKV``) go through SDPA's fused kernel a row's stretch at a time,
    over the prefix and that row's tokens, causally; the model's mask, which sees one long row, is not
    used. Each decoding step (one query a row) scores the rows' queries against the single prefix
    copy: query heads that share a key/value head and the rows are folded into one
    matrix per key/value head, then one softmax runs over prefix and own positions together.
    ``attention_mask`` is SDPA's boolean mask over prefix then own positions.
    """
    if isinstance(key, PackedKV):
        return packed_attention(module, query, key, value, scaling), None
    if not isinstance(key, PrefixedKV):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout
        )
    rows, heads, _, dim = query.shape
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


def packed_attention(
    module: torch.nn.Module, query: torch.Tensor, key: PackedKV, value: PackedKV, scaling: float | None
) -> torch.Tensor:
    """Causal attention of each packed row's stretch of ``query`` [1, heads, sum n_i, dim] over the
    prefix and its own tokens; the rows' outputs one after another, [1, sum n_i, heads, dim]."""
    shared = key.prefix.shape[-2]
    outputs, start = [], 0
    for own_keys, own_values in zip(key.rows, value.rows, strict=True):
        length = own_keys.shape[-2]
        if length == 0:
            continue
        visible = torch.ones(length, shared + length, dtype=torch.bool, device=query.device).tril(shared)
        output, _ = sdpa_attention_forward(
            module,
            query[:, :, start : start + length],
            torch.cat([key.prefix, own_keys], dim=-2),
            torch.cat([value.prefix, own_values], dim=-2),
            visible[None, None],
            scaling=scaling,
        )
        outputs.append(output)
        start += length
    return torch.cat(outputs, dim=1)


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
