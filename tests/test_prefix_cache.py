"""Shared-prefix generation: the prefix's keys and values kept once for a whole batch."""

import pytest
import torch
from conftest import plain_generate
from torch.nn.functional import scaled_dot_product_attention
from transformers import DynamicCache
from transformers.masking_utils import AttentionMaskInterface

from synthembed.llm import TransformersGenerator, shared_prefix_length
from synthembed.prefix_cache import (
    ATTENTION,
    PrefixedKV,
    full_mask,
    shared_prefix_attention,
    shared_prefix_cache,
)

GENERATION = {
    "batch_size": 8,
    "max_new_tokens": 6,
    "temperature": 0.0,
    "top_p": 1.0,
    "repetition_penalty": 1.3,
    "repetition_penalty_on": "answer",
    "stop": None,
}


def decoding_attention_and_sdpa(dtype: torch.dtype, dim: int, shared: int, spread: float):
    """Shared-prefix attention of one decoding step on random ``dtype`` inputs (entries of standard
    deviation ``spread``), and float32 SDPA over each row's copy of the prefix on the same inputs."""
    torch.manual_seed(0)
    rows, heads, kv_heads, own = 3, 4, 2, 4

    def draw(*shape: int) -> torch.Tensor:
        return (spread * torch.randn(*shape)).to(dtype)

    query = draw(rows, heads, 1, dim)
    prefix_keys, prefix_values = draw(1, kv_heads, shared, dim), draw(1, kv_heads, shared, dim)
    own_keys, own_values = draw(rows, kv_heads, own, dim), draw(rows, kv_heads, own, dim)
    mask = torch.ones(rows, 1, 1, shared + own, dtype=torch.bool)
    mask[0, :, :, shared : shared + 2] = False  # row 0 is left-padded by two tokens after the prefix
    output, _ = shared_prefix_attention(
        torch.nn.Module(),
        query,
        PrefixedKV(prefix_keys, own_keys),
        PrefixedKV(prefix_values, own_values),
        mask,
        scaling=dim**-0.5,
    )
    keys = torch.cat([prefix_keys.expand(rows, -1, -1, -1), own_keys], dim=-2).repeat_interleave(2, dim=1)
    values = torch.cat([prefix_values.expand(rows, -1, -1, -1), own_values], dim=-2).repeat_interleave(
        2, dim=1
    )
    expected = scaled_dot_product_attention(
        query.float(), keys.float(), values.float(), attn_mask=mask, scale=dim**-0.5
    ).transpose(1, 2)
    assert output.shape == (rows, 1, heads, dim) and output.dtype == dtype
    return output, expected


def test_decoding_attention_equals_sdpa_over_each_rows_copy_of_the_prefix():
    output, expected = decoding_attention_and_sdpa(torch.float32, dim=8, shared=5, spread=1.0)
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-6)


def test_bfloat16_decoding_attention_is_float32_attention_rounded_once():
    # Large scores, as a trained model's: bfloat16 scores and softmax were off by up to 0.24 here.
    output, expected = decoding_attention_and_sdpa(torch.bfloat16, dim=64, shared=50, spread=3.0)
    torch.testing.assert_close(output.float(), expected, rtol=2**-8, atol=0.04)


def test_cache_keeps_the_prefix_once_and_each_rows_tokens_in_place():
    prefix = DynamicCache()
    prefix.update(torch.randn(1, 2, 7, 4), torch.randn(1, 2, 7, 4), 0)
    cache = shared_prefix_cache(prefix, rows=3, capacity=10)
    first_keys, _ = cache.update(torch.ones(3, 2, 4, 4), torch.ones(3, 2, 4, 4), 0)
    keys, values = cache.update(torch.full((3, 2, 1, 4), 2.0), torch.full((3, 2, 1, 4), 2.0), 0)
    assert cache.get_seq_length() == 7 + 5
    assert cache.layers[0].get_mask_sizes(query_length=1) == (13, 0)
    assert keys.prefix.shape == (1, 2, 7, 4) and keys.prefix.data_ptr() == prefix.layers[0].keys.data_ptr()
    assert keys.own.shape == (3, 2, 5, 4) and keys.own.data_ptr() == first_keys.own.data_ptr()
    assert keys.own[:, :, :4].eq(1).all() and values.own[:, :, 4].eq(2).all()


def test_packed_rows_end_at_one_column_and_attend_over_the_prefix_and_their_own_tokens_only():
    torch.manual_seed(0)
    prefix = DynamicCache()
    prefix.update(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), 0)
    cache = shared_prefix_cache(prefix, rows=3, capacity=6)
    cache.layers[0].pack([2, 0, 3])
    packed_keys, packed_values = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4)
    keys, values = cache.update(packed_keys, packed_values, 0)
    assert cache.get_seq_length() == 3 + 3
    own = cache.layers[0].keys
    assert own[0, :, 1:3].equal(packed_keys[0, :, :2]) and own[2, :, :3].equal(packed_keys[0, :, 2:])
    assert own[0, :, :1].eq(0).all() and own[1, :, :3].eq(0).all()  # left padding, masked later
    query = torch.randn(1, 4, 5, 4)
    attention = torch.nn.Module()
    attention.num_key_value_groups = 2  # two query heads per key/value head
    output, _ = shared_prefix_attention(attention, query, keys, values, None, scaling=0.5)

    def alone(stretch: slice, row_keys: torch.Tensor, row_values: torch.Tensor) -> torch.Tensor:
        n = row_keys.shape[-2]
        visible = torch.ones(n, 3 + n, dtype=torch.bool).tril(3)
        every_key = torch.cat([prefix.layers[0].keys, row_keys], dim=-2).repeat_interleave(2, dim=1)
        every_value = torch.cat([prefix.layers[0].values, row_values], dim=-2).repeat_interleave(2, dim=1)
        return scaled_dot_product_attention(
            query[:, :, stretch], every_key, every_value, attn_mask=visible, scale=0.5
        ).transpose(1, 2)

    expected = torch.cat(
        [
            alone(slice(0, 2), packed_keys[:, :, :2], packed_values[:, :, :2]),
            alone(slice(2, 5), packed_keys[:, :, 2:], packed_values[:, :, 2:]),
        ],
        dim=1,
    )
    torch.testing.assert_close(output, expected)


def answer_dependent_generator(tiny_qwen3, tmp_path, **sampling) -> TransformersGenerator:
    """The tiny Qwen3 behind the generator, its weights scaled up: at the initial scale a random model
    repeats one token whatever the prompt; larger weights make each answer depend on the row's tokens."""
    generator = TransformersGenerator(GENERATION | {"model": str(tiny_qwen3)} | sampling, tmp_path)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, weight in generator.model.named_parameters():
            if "norm" not in name:
                weight.normal_(0.0, 0.5)
    return generator


SYSTEM = {"role": "system", "content": "Write one search query for the document. " * 6}
DOCUMENTS = ["def add(a, b): return a + b", "import os", "class Stack: pass # a list with push and pop"]


def forward_shapes(generator: TransformersGenerator) -> list[tuple[int, int]]:
    """The (rows, tokens) of every forward pass the generator's model makes from now on."""
    shapes: list[tuple[int, int]] = []
    generator.model.model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    return shapes


def prompt_tokens(generator: TransformersGenerator, requests) -> list[list[int]]:
    chat = generator.tokenizer.apply_chat_template
    return [chat(m, add_generation_prompt=True, return_dict=True)["input_ids"] for m in requests]


def test_generation_over_a_shared_prefix_answers_as_plain_left_padded_generation(tiny_qwen3, tmp_path):
    generator = answer_dependent_generator(tiny_qwen3, tmp_path)
    requests = [[SYSTEM, {"role": "user", "content": text}] for text in DOCUMENTS]
    answers = [a.text for a in generator.generate(requests, seeds=[0, 0, 0])]
    assert generator.model.config._attn_implementation == "sdpa"  # restored for every other use
    assert answers == plain_generate(generator, requests, seeds=[0, 0, 0])
    assert all(answers) and len(set(answers)) == len(answers)


def test_samples_of_one_prompt_run_its_tokens_once_and_draw_as_plain_sampling(tiny_qwen3, tmp_path):
    generator = answer_dependent_generator(tiny_qwen3, tmp_path, temperature=1.0)
    requests = [[SYSTEM, {"role": "user", "content": DOCUMENTS[i]}] for i in (0, 0, 0, 2, 2, 1)]
    seeds = [3, 4, 5, 6, 7, 8]  # one seed a call (llm.call_seed), a request's samples next to each other
    shapes = forward_shapes(generator)
    answers = [a.text for a in generator.generate(requests, seeds)]
    rows = prompt_tokens(generator, requests)
    shared = shared_prefix_length(rows)
    # the prefix once, the three distinct prompts' own tokens (all but their last) once, packed into
    # one unpadded row, then the six rows token by token
    distinct_own = sum(len(rows[i]) - shared - 1 for i in (0, 3, 5))
    assert shapes[:3] == [(1, shared), (1, distinct_own), (6, 1)]
    assert answers == plain_generate(generator, requests, seeds)
    assert len(set(answers[:3])) == 3  # the samples of one prompt part


def test_the_packed_forward_builds_no_mask_over_the_packed_sequence(tiny_qwen3, tmp_path):
    generator = answer_dependent_generator(tiny_qwen3, tmp_path)
    requests = [[SYSTEM, {"role": "user", "content": text}] for text in DOCUMENTS]
    query_lengths = []

    def recording_mask(*args, **kwargs):
        mask = full_mask(*args, **kwargs)
        query_lengths.append(mask.shape[-2])
        return mask

    AttentionMaskInterface.register(ATTENTION, recording_mask)
    try:
        generator.generate(requests, seeds=[0, 0, 0])
    finally:
        AttentionMaskInterface.register(ATTENTION, full_mask)
    shared = shared_prefix_length(prompt_tokens(generator, requests))
    assert query_lengths[0] == shared and set(query_lengths[1:]) == {1}  # the prefix, then decoding


def test_later_batches_of_one_template_reuse_its_prefix_and_answer_as_plain_generation(tiny_qwen3, tmp_path):
    generator = answer_dependent_generator(tiny_qwen3, tmp_path)
    template = [[SYSTEM, {"role": "user", "content": text}] for text in DOCUMENTS]
    other_system = {"role": "system", "content": "Summarise the document in one line. " * 6}
    other = [[other_system, {"role": "user", "content": text}] for text in DOCUMENTS[:2]]
    shapes = forward_shapes(generator)
    first = [a.text for a in generator.generate(template[:2], seeds=[0, 0])]
    shared = shared_prefix_length(prompt_tokens(generator, template))
    assert shapes[0] == (1, shared)
    del shapes[:]
    # one row alone shares all its prompt but the last token with itself: the template's prefix
    # already kept serves, and the rest of the prompt runs as the row's own tokens
    later = [a.text for a in generator.generate(template[2:], seeds=[0])]
    assert shapes[0] == (1, len(prompt_tokens(generator, template[2:])[0]) - shared - 1)
    del shapes[:]
    switched = [a.text for a in generator.generate(other, seeds=[0, 0])]
    assert shapes[0] == (1, shared_prefix_length(prompt_tokens(generator, other)))
    assert first + later == plain_generate(generator, template, seeds=[0, 0, 0])
    assert switched == plain_generate(generator, other, seeds=[0, 0])


def test_a_sampled_answer_depends_on_its_request_and_seed_only(tiny_qwen3, tmp_path):
    generator = answer_dependent_generator(tiny_qwen3, tmp_path, temperature=1.0, top_p=0.9)
    asked = [SYSTEM, {"role": "user", "content": DOCUMENTS[0]}]
    other = [SYSTEM, {"role": "user", "content": DOCUMENTS[2]}]
    alone = generator.generate([asked], seeds=[7])[0].text
    assert alone
    assert generator.generate([other, asked], seeds=[1, 7])[1].text == alone
    assert generator.generate([asked, asked, other], seeds=[2, 7, 7])[1].text == alone
    assert generator.generate([asked], seeds=[8])[0].text != alone


def test_the_generator_answers_each_call_as_asked_alone_whatever_its_batch(tiny_qwen3, tmp_path):
    generator = answer_dependent_generator(tiny_qwen3, tmp_path, temperature=1.0)
    requests = [[SYSTEM, {"role": "user", "content": text}] for text in DOCUMENTS]
    seeds = [11, 12, 13]
    answers: dict[int, str] = {}
    generator.run(requests, seeds, None, lambda done: answers.update((i, c.text) for i, c in done))
    generator.batch_size = 1
    one_by_one: dict[int, str] = {}
    generator.run(requests, seeds, None, lambda done: one_by_one.update((i, c.text) for i, c in done))
    assert answers == one_by_one and len(set(answers.values())) == 3


def test_repetition_penalty_counts_the_answers_tokens_and_not_the_prompts(tiny_qwen3, tmp_path):
    answer_only = TransformersGenerator(GENERATION | {"model": str(tiny_qwen3)}, tmp_path)
    args = answer_only.decoding_args(prompt_width=3, seeds=[0])
    (penalty,) = args["logits_processor"]
    ids = torch.tensor([[5, 6, 7, 8, 8]])  # a prompt of 5 6 7, an answer of 8 8
    scores = penalty(ids, torch.full((1, 10), 2.0))
    assert scores[0].tolist() == pytest.approx([2.0] * 8 + [2.0 / 1.3, 2.0])
    assert args["repetition_penalty"] is None  # or transformers would penalise the prompt as well
    prompt_too = TransformersGenerator(
        GENERATION | {"model": str(tiny_qwen3), "repetition_penalty_on": "all"}, tmp_path
    ).decoding_args(prompt_width=3, seeds=[0])
    assert prompt_too["repetition_penalty"] == 1.3 and not prompt_too["logits_processor"]
