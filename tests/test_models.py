"""The real models: the embedded generator, training (LoRA and full) and evaluation."""

import numpy as np
import polars as pl
import pytest
from sentence_transformers import SentenceTransformer

from synthembed.evaluate import compare, evaluate_model
from synthembed.train import train_embedder

EMBEDDER = {
    "model": "embedded:all-minilm-l6-v2",
    "max_seq_length": 64,
    "encode_dtype": "float32",
    "query_prompt": "",
}
TRAIN = {
    "epochs": 1,
    "max_steps": 2,
    "batch_size": 4,
    "learning_rate": 1e-3,
    "warmup_ratio": 0.0,
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["query", "value"]},
}
PAIRS = pl.DataFrame(
    {
        "task_type": ["retrieval"] * 8 + ["classification"] * 4,
        "anchor": [f"how do I use function number {i}" for i in range(8)]
        + [f"def helper_{i}(x): return x - {i}" for i in range(4)],
        "positive": [f"def function_{i}(x): return x * {i}" for i in range(8)]
        + ["arithmetic: functions that compute with numbers"] * 2
        + ["subtraction: functions that take away", "helpers: small utility functions"],
        "negatives": [[f"def other_{i}(y): return y + {i}"] for i in range(8)]
        + [["strings: text handling"]] * 4,
    }
)
PROBE = ["how to multiply a number", "def triple(x): return 3 * x"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_training_saves_a_loadable_model_that_changed(tmp_path, method, minilm):
    history = train_embedder(
        PAIRS,
        EMBEDDER,
        TRAIN | {"method": method},
        seed=1,
        device="cpu",
        out_dir=tmp_path / "model",
        work_dir=tmp_path / "work",
    )
    # Two task types, one dataset each; batches never mix them.
    assert [h["step"] for h in history] == [1, 2]
    assert all(np.isfinite(h["loss"]) for h in history)
    assert (tmp_path / "model" / "adapter" / "adapter_model.safetensors").exists() == (method == "lora")
    tuned = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    assert not any("lora" in name for name, _ in tuned.named_parameters())
    before, after = minilm.encode(PROBE), tuned.encode(PROBE)
    assert before.shape == after.shape
    assert np.abs(before - after).max() > 1e-4


@pytest.mark.slow
def test_evaluation_scores_exact_matches_perfectly_and_computes_deltas(minilm):
    corpus = {
        f"d{i}": text
        for i, text in enumerate(
            [
                "the cat sat on the mat",
                "stock prices fell sharply today",
                "protein folding simulation results",
            ]
        )
    }
    queries = {"q0": "the cat sat on the mat", "q1": "stock prices fell sharply today"}
    sets = {"exact": (queries, {"q0": {"d0"}, "q1": {"d1"}})}
    scores = evaluate_model(minilm, corpus, sets, query_prompts={}, batch_size=8)
    assert scores["exact"]["ndcg@10"] == pytest.approx(1.0)
    assert scores["exact"]["recall@100"] == pytest.approx(1.0)
    worse = {"exact": {k: v - 0.25 for k, v in scores["exact"].items()}}
    assert compare(worse, scores)["exact"]["delta"]["mrr@10"] == pytest.approx(0.25)


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
        "stop": ["\n"],
    }
    generator = TransformersGenerator(cfg, llm_cache_dir, device="cpu")
    assert generator.tokenizer.padding_side == "left"
    batch = [
        [{"role": "user", "content": "Name a fruit."}],
        [{"role": "user", "content": "Write a search query about Python sorting."}],
    ]
    first = generator.generate(batch, seed=0)
    assert len(first) == 2 and all(isinstance(c.text, str) and c.text for c in first)
    assert all(c.tokens_in > 5 and 0 < c.tokens_out <= 8 for c in first)
    assert generator.generate(batch, seed=0) == first
