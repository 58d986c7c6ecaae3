"""The real models: the embedded generator and evaluation (training: test_train.py)."""

import math

import pytest

from synthembed.evaluate import compare, evaluate_model


def test_evaluation_scores_exact_matches_perfectly_and_computes_deltas(minilm):
    corpus = {
        f"d{i}": text
        for i, text in enumerate(
            [
                "the cat sat on the mat",
                "stock prices fell sharply today",
                "protein folding simulation results",
                "a cat lay on a rug",
            ]
        )
    }
    queries = {"q0": "the cat sat on the mat", "q1": "stock prices fell sharply today"}
    # q2's relevant document is the paraphrase, ranked second behind the exact match (cosine 0.71).
    with_second = queries | {"q2": "the cat sat on the mat"}
    sets = {
        "exact": (queries, {"q0": {"d0"}, "q1": {"d1"}}),
        "second": (with_second, {"q0": {"d0"}, "q1": {"d1"}, "q2": {"d3"}}),
    }
    scores = evaluate_model(minilm, corpus, sets, query_prompts={}, batch_size=8)  # one corpus encoding
    assert scores["exact"]["ndcg@10"] == pytest.approx(1.0)
    assert scores["exact"]["mrr@10"] == pytest.approx(1.0)
    second = scores["second"]
    assert second["ndcg@10"] == pytest.approx((1 + 1 + 1 / math.log2(3)) / 3)
    assert second["mrr@10"] == pytest.approx((1 + 1 + 1 / 2) / 3)
    assert second["recall@10"] == pytest.approx(1.0)
    worse = {"exact": {k: v - 0.25 for k, v in scores["exact"].items()}}
    compared = compare({"base": worse, "tuned": scores, "merged": worse})["exact"]
    assert compared["delta_tuned"]["mrr@10"] == pytest.approx(0.25)
    assert compared["delta_merged"]["mrr@10"] == pytest.approx(0.0)


@pytest.mark.slow
def test_embedded_generator_writes_deterministic_completions(llm_cache_dir):
    from synthembed.llm import TransformersGenerator

    cfg = {
        "model": "embedded:smollm2-135m-instruct",
        "batch_size": 2,
        "max_new_tokens": 8,
        "temperature": 0.0,
        "top_p": 1.0,
        "repetition_penalty": 1.3,
        "repetition_penalty_on": "answer",
        "stop": ["\n"],
    }
    generator = TransformersGenerator(cfg, llm_cache_dir, device="cpu")
    assert generator.tokenizer.padding_side == "left"
    batch = [
        [{"role": "user", "content": "Name a fruit."}],
        [{"role": "user", "content": "Write a search query about Python sorting."}],
    ]
    first = generator.generate(batch, seeds=[0, 0])
    assert all(c.tokens_in > 5 and 0 < c.tokens_out <= 8 for c in first)
    assert generator.generate(batch, seeds=[0, 0]) == first
    # Each answer belongs to its own prompt: batched, a row gets what it gets alone.
    alone = [generator.generate([messages], seeds=[0])[0].text for messages in batch]
    assert alone == [c.text for c in first]
    assert "banana" in first[0].text.lower() and "sort" in first[1].text.lower()


def test_encode_batches_reads_texts_a_chunk_at_a_time_and_keeps_batch_order():
    import numpy as np

    from synthembed.models import encode_batches, length_batches

    texts = ["a", "ccc", "bb", "dddd", "e", "ff", "ggggg"]
    batches = length_batches([len(t) for t in texts], 2)
    fetched = []

    def fetch(indices):
        fetched.append(list(indices))
        return [texts[i] for i in indices]

    def encode(batch, **options):
        # A batch's vectors depend on its mates, as a real encoder's rounding does.
        return np.array([[len(t), len(batch), ord(batch[0][0])] for t in batch], dtype=np.float32)

    order, vectors = encode_batches(encode, fetch, batches, "texts", chunk_texts=3)
    assert batches == [[6, 3], [1, 2], [5, 0], [4]]
    assert fetched == [[6, 3, 1, 2], [5, 0, 4]]
    assert order.tolist() == [6, 3, 1, 2, 5, 0, 4]
    assert vectors.tolist() == [
        [5, 2, ord("g")],
        [4, 2, ord("g")],
        [3, 2, ord("c")],
        [2, 2, ord("c")],
        [2, 2, ord("f")],
        [1, 2, ord("f")],
        [1, 1, ord("e")],
    ]
    whole = encode_batches(encode, fetch, batches, "texts")
    assert (whole[0] == order).all() and (whole[1] == vectors).all()


def test_an_embedded_gguf_is_converted_once_per_file_it_comes_from(tmp_path, monkeypatch):
    import os

    from synthembed import models

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF weights")
    converted = []

    def convert(source, target):
        converted.append(target)
        target.mkdir(parents=True)

    monkeypatch.setattr(models, "embedded_path", lambda name: gguf)
    monkeypatch.setattr(models, "convert_gguf", convert)
    first = models.causal_lm_path("embedded:smollm2-135m-instruct", tmp_path / "cache")
    assert models.causal_lm_path("embedded:smollm2-135m-instruct", tmp_path / "cache") == first
    assert len(converted) == 1 and first.startswith(
        str(tmp_path / "cache" / "models" / "smollm2-135m-instruct-")
    )
    os.utime(gguf, ns=(0, gguf.stat().st_mtime_ns + 1))  # the package reinstalled
    second = models.causal_lm_path("embedded:smollm2-135m-instruct", tmp_path / "cache")
    assert second != first and [str(t) for t in converted] == [first, second]
