"""The self-trained doc2query generator, on a tiny random Qwen3 (and shared-prefix generation with it)."""

import polars as pl
import pytest
from conftest import ROOT, plain_generate

from synthembed.doc2query import (
    doc2query_messages,
    encode_example,
    fine_tune,
    load_doc2query_prompt,
    model_fingerprint,
    training_examples,
)
from synthembed.llm import TransformersGenerator
from synthembed.models import load_causal_lm

PROMPT = load_doc2query_prompt(ROOT / "prompts" / "doc2query.yaml")
CFG = {
    "max_pairs": 10,
    "doc_chars": 200,
    "max_steps": 60,
    "batch_size": 4,
    "learning_rate": 0.01,
    "max_length": 400,
}
PAIRS = pl.DataFrame(
    {
        "doc_id": ["a", "b", "c"],
        "kind": ["title", "docstring", "first_sentence"],
        "query": ["protein folding", "sort numbers", "vaccines reduce measles"],
        "positive": [
            "protein folding depends on hydrophobic interactions",
            "def sort_numbers(values): return sorted(values)",
            "vaccines reduce the incidence of measles in children",
        ],
        "lang": ["en"] * 3,
    }
)
GENERATION = {
    "batch_size": 3,
    "max_new_tokens": 8,
    "temperature": 0.0,
    "top_p": 1.0,
    "repetition_penalty": 1.0,
    "repetition_penalty_on": "answer",
}


def test_training_scores_the_answer_only_and_leaves_out_what_is_too_long(tiny_qwen3):
    tokenizer, model = load_causal_lm(str(tiny_qwen3), "cpu", for_training=True)
    messages = doc2query_messages(PROMPT, "retrieval", PAIRS["positive"][0], 200)
    ids, labels = encode_example(tokenizer, messages, "protein folding", max_length=400)
    reply = tokenizer("protein folding", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert ids[-len(reply) :] == reply and labels[-len(reply) :] == reply
    assert labels[: -len(reply)] == [-100] * (len(ids) - len(reply))
    assert encode_example(tokenizer, messages, "protein folding", max_length=len(ids) - 1) is None
    examples = training_examples(PAIRS, PROMPT, CFG, seed=0)
    lengths = sorted(len(encode_example(tokenizer, *e, max_length=400)[0]) for e in examples)
    curve, too_long = fine_tune(
        model, tokenizer, examples, CFG | {"max_length": lengths[1], "max_steps": 2}, 0
    )
    assert too_long == 1 and len(curve) == 2
    with pytest.raises(ValueError, match="no structural pair to train on within 10 tokens"):
        fine_tune(model, tokenizer, examples, CFG | {"max_length": 10}, seed=0)


def test_fine_tuned_model_writes_the_corpus_queries(tiny_qwen3, tmp_path):
    tokenizer, model = load_causal_lm(str(tiny_qwen3), "cpu", for_training=True)
    examples = training_examples(PAIRS, PROMPT, CFG, seed=0)
    assert [m[1]["content"].split("\n")[0] for m, _ in examples].count("Function:") == 1  # the docstring pair
    curve, too_long = fine_tune(model, tokenizer, examples, CFG, seed=0)
    assert too_long == 0
    assert [p["step"] for p in curve] == list(range(1, 61))
    assert curve[-1]["loss"] < 0.1 * curve[0]["loss"]
    model.save_pretrained(tmp_path / "d2q")
    tokenizer.save_pretrained(tmp_path / "d2q")
    generator = TransformersGenerator(GENERATION | {"model": str(tmp_path / "d2q"), "stop": ["\n"]}, tmp_path)
    requests = [messages for messages, _ in examples]
    answers = generator.generate(requests, seeds=[0] * len(requests))  # rows share the system message
    assert [a.text for a in answers] == [answer for _, answer in examples]
    assert [a.text for a in answers] == plain_generate(generator, requests, seeds=[0] * len(requests))
    assert model_fingerprint(tmp_path / "d2q") != model_fingerprint(tiny_qwen3)
    assert model_fingerprint(tmp_path / "d2q").startswith("doc2query:")
