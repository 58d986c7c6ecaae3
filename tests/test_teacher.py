"""The teacher: a causal LM's log p(query | document) for each pair's candidates, the negatives stage
that writes it, and its distillation into the embedder."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from conftest import MINILM, ROOT, default_params
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from transformers import AutoModelForCausalLM, AutoTokenizer

from synthembed.io import InputError
from synthembed.models import load_embedder
from synthembed.params import validate_params
from synthembed.teacher import (
    load_teacher,
    query_likelihood_scorer,
    scored_tokens,
    sequence_log_likelihoods,
    teacher_prompt,
)
from synthembed.train import (
    TeacherDistillation,
    teacher_divergence,
    train_embedder,
    training_datasets,
    training_loss,
)

TRAIN = default_params()["train"] | {
    "method": "full",
    "loss": "mnrl",
    "max_steps": 6,
    "batch_size": 4,
    "learning_rate": 1e-4,
    "warmup_ratio": 0.0,
    "checkpoints": 1,
    "distillation": 20.0,
}


@pytest.fixture(scope="module")
def tiny_lm(tiny_qwen3):
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    return tokenizer, AutoModelForCausalLM.from_pretrained(tiny_qwen3).eval()


def test_log_likelihood_is_the_models_own_loss_and_does_not_depend_on_the_batch(tiny_lm):
    tokenizer, model = tiny_lm
    texts = [("def add(a, b):", " return a + b"), ("sort a list", " sorted(values)"), ("x", " y = 1")]
    rows = [scored_tokens(tokenizer(p)["input_ids"], tokenizer(a)["input_ids"]) for p, a in texts]
    together = sequence_log_likelihoods(model, rows, tokenizer.pad_token_id, batch_size=3)
    alone = [sequence_log_likelihoods(model, [row], tokenizer.pad_token_id, batch_size=1)[0] for row in rows]
    np.testing.assert_allclose(together, alone, rtol=1e-4)
    for (ids, labels), total in zip(rows, together, strict=True):
        # transformers' loss is the mean negative log-likelihood over the labelled tokens.
        out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
        scored = sum(label != -100 for label in labels[1:])
        assert total == pytest.approx(-out.loss.item() * scored, rel=1e-4)


def test_teacher_prompt_shows_the_instruction_and_the_cut_document_in_the_chat_template(tiny_lm):
    tokenizer, _ = tiny_lm
    document = "def add(a, b): return a + b " * 20
    text = tokenizer.decode(teacher_prompt(tokenizer, "Write a query.", document, doc_tokens=5))
    shown = tokenizer.decode(tokenizer(document, add_special_tokens=False)["input_ids"][:5])
    assert text == f"<|im_start|>user\nWrite a query.\n\n{shown}<|im_end|>\n<|im_start|>assistant\n"


def test_scorer_prefers_the_document_a_trained_model_was_taught_to_answer(tiny_qwen3):
    """A tiny LM fitted to answer "sort" after one document and "add" after another scores each query
    highest under its own document."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3)
    pairs = [
        ("sort a list", "def sort_numbers(values): return sorted(values)"),
        ("add two numbers", "def add(a, b): return a + b"),
    ]
    rows = [
        scored_tokens(teacher_prompt(tokenizer, "Query:", d, 64), tokenizer(q + "<|im_end|>")["input_ids"])
        for q, d in pairs
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(60):
        for ids, labels in rows:
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    score = query_likelihood_scorer(model.eval(), tokenizer, "Query:", 64, batch_size=2)
    queries, documents = [q for q, _ in pairs], [d for _, d in pairs]
    own = score(queries, documents)
    swapped = score(queries, documents[::-1])
    assert (own > swapped).all()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_teacher_is_loaded_in_its_dtype_not_cast_to_it(tiny_qwen3, tmp_path, monkeypatch, dtype):
    """A float32 teacher cast from weights loaded in bfloat16 (the generator's dtype on GPUs) would keep
    bfloat16's rounding: the weights must be read in the dtype asked."""
    loaded = []
    load = AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        model = load(*args, **kwargs)
        loaded.append((kwargs["dtype"], model.dtype))
        return model

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    cfg = {
        "model": str(tiny_qwen3),
        "instruction": "Query:",
        "doc_tokens": 16,
        "batch_size": 2,
        "dtype": dtype,
    }
    score = load_teacher(cfg, {"device": "cpu", "cache_dir": str(tmp_path)})
    assert loaded == [(getattr(torch, dtype), getattr(torch, dtype))]
    scores = score(["sort a list", "add"], ["def f(x): return sorted(x)", "def add(a, b): return a + b"])
    assert scores.shape == (2,) and np.isfinite(scores).all() and (scores < 0).all()


def test_divergence_is_zero_when_the_model_agrees_with_the_teacher_and_the_kl_otherwise():
    query = torch.tensor([[1.0, 0.0]])
    candidates = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 3.0]])]  # cosines 1 and 0
    # The model's distribution is softmax([1, 0] / 0.5); these log-likelihoods have the same softmax.
    agreeing = torch.tensor([[2.0, 0.0]]) - 7.0
    assert teacher_divergence([query, *candidates], agreeing, 0.5, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    disagreeing = torch.tensor([[0.0, 2.0]])
    teacher_p, model_p = torch.softmax(disagreeing, -1), torch.softmax(agreeing, -1)
    expected = (teacher_p * (teacher_p.log() - model_p.log())).sum().item()
    assert teacher_divergence([query, *candidates], disagreeing, 0.5, 1.0).item() == pytest.approx(
        expected, rel=1e-5
    )


def test_teacher_temperature_softens_the_teacher_before_the_kl():
    query = torch.tensor([[1.0, 0.0]])
    candidates = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 3.0]])]  # model: softmax([2, 0])
    peaked = torch.tensor([[-10.0, -30.0]])  # a 20-nat margin: one-hot on the first at temperature 1
    # At temperature 10 the margin is 2 nats: the model's own distribution, so nothing to learn.
    assert teacher_divergence([query, *candidates], peaked, 0.5, 10.0).item() == pytest.approx(0.0, abs=1e-6)
    at_one = teacher_divergence([query, *candidates], peaked, 0.5, 1.0).item()
    assert at_one == pytest.approx(-math.log(torch.softmax(torch.tensor([2.0, 0.0]), -1)[0].item()), rel=1e-4)


def test_distillation_needs_teacher_scores(minilm):
    pairs = pl.DataFrame(
        {"task_type": ["retrieval"], "anchor": ["q"], "positive": ["p"], "negatives": [["n"]]}
    )
    with pytest.raises(ValueError, match="no pairs have teacher scores"):
        training_loss(minilm, TRAIN, training_datasets(pairs, ""))
    scored = training_datasets(pairs.with_columns(teacher_scores=pl.Series([[-1.0, -2.0]])), "")
    losses = training_loss(minilm, TRAIN, scored, dev_names=["sts"])
    assert isinstance(losses["retrieval"], TeacherDistillation)
    assert losses["sts"] is losses["retrieval"].infonce
    without = training_loss(minilm, TRAIN | {"distillation": 0.0}, scored, dev_names=["sts"])
    assert isinstance(without, MultipleNegativesRankingLoss)


@pytest.mark.slow
def test_training_with_distillation_moves_the_model_towards_the_teacher(tmp_path):
    """The teacher prefers each pair's negative to its positive; distilled, the model's margin
    s(q, d+) - s(q, d-) shrinks on those pairs, and grows again without the teacher."""
    anchors = [
        f"how to compute the {w} of a list"
        for w in ["sum", "mean", "maximum", "minimum", "length", "product", "median", "mode"]
    ]
    positives = [
        f"def list_{w}(values): return {w}(values)"
        for w in ["sum", "mean", "max", "min", "len", "prod", "median", "mode"]
    ]
    negatives = [
        f"the {w} of the numbers in the list, computed step by step"
        for w in ["total", "average", "largest", "smallest", "count", "multiple", "middle", "commonest"]
    ]
    pairs = pl.DataFrame(
        {
            "task_type": ["retrieval"] * 8,
            "anchor": anchors,
            "positive": positives,
            "negatives": [[n] for n in negatives],
            "teacher_scores": [[-9.0, -1.0]] * 8,
        }
    )
    # Dev pairs of a task type the training pairs lack still get a loss.
    dev = pl.DataFrame(
        {
            "task_type": ["retrieval", "sts"],
            "anchor": [anchors[0], "a list's sum"],
            "positive": [positives[0], "the total of a list"],
        }
    )

    def margin(model) -> float:
        q, p, n = (model.encode(t, normalize_embeddings=True) for t in (anchors, positives, negatives))
        return float(np.mean((q * p).sum(1) - (q * n).sum(1)))

    base = margin(load_embedder(MINILM))
    margins = {}
    for weight in (0.0, 20.0):
        out = tmp_path / f"model-{weight}"
        train_embedder(
            pairs, dev, MINILM, TRAIN | {"distillation": weight}, 0, "cpu", out, tmp_path / f"w{weight}"
        )
        margins[weight] = margin(load_embedder(MINILM, path=str(out)))
    assert margins[20.0] < base < margins[0.0]


def test_negatives_stage_scores_retrieval_candidates_with_the_teacher(tiny_qwen3, tmp_path):
    params = default_params()
    params["runtime"]["cache_dir"] = str(tmp_path / "cache")
    params["embedder"] |= {"batch_size": 8, "max_seq_length": 64}
    params["negatives"] |= {"num_negatives": 2, "range_max": 6}
    teacher = {"model": str(tiny_qwen3), "doc_tokens": 32, "batch_size": 4, "dtype": "float32"}
    params["negatives"]["teacher"] |= teacher
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    corpus = [f"def helper_{i}(values): return sorted(values)[{i}]" for i in range(8)]
    pl.DataFrame({"doc_id": [str(i) for i in range(8)], "title": [""] * 8, "text": corpus}).write_parquet(
        tmp_path / "docs.parquet"
    )
    balanced = pl.DataFrame(
        {
            "doc_id": ["0", "1", "2"],
            "split": ["train"] * 3,
            "task_type": ["retrieval", "retrieval", "sts"],
            "generator": ["llm"] * 3,
            "anchor": ["the first sorted value", "the second sorted value", "sorted values, second"],
            "positive": [corpus[0], corpus[1], "the second of the sorted values"],
            "label": [None] * 3,
            "llm_negative": [None] * 3,
        },
        schema_overrides={"label": pl.String, "llm_negative": pl.String},
    )
    balanced.write_parquet(tmp_path / "balanced.parquet")
    out = {k: tmp_path / name for k, name in [("out", "negatives.parquet"), ("stats", "stats.json")]}
    subprocess.run(
        [
            sys.executable,
            "scripts/negatives.py",
            "--params",
            str(tmp_path / "params.yaml"),
            "--balanced",
            str(tmp_path / "balanced.parquet"),
            "--docs",
            str(tmp_path / "docs.parquet"),
            "--out",
            str(out["out"]),
            "--out-margins-plot",
            str(tmp_path / "m.png"),
            "--out-rank-plot",
            str(tmp_path / "r.png"),
            "--out-stats",
            str(out["stats"]),
        ],
        cwd=ROOT,
        check=True,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )
    mined = pl.read_parquet(out["out"]).sort("anchor")
    retrieval = mined.filter(pl.col("task_type") == "retrieval")
    assert retrieval["teacher_scores"].list.len().to_list() == [3, 3]
    assert (retrieval["teacher_scores"].explode() < 0).all()
    assert mined.filter(pl.col("task_type") == "sts")["teacher_scores"].to_list() == [None]
    # The same scores as the scorer gives those texts directly.
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen3)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3).eval()
    score = query_likelihood_scorer(model, tokenizer, params["negatives"]["teacher"]["instruction"], 32, 4)
    row = retrieval.row(0, named=True)
    direct = score([row["anchor"]] * 3, [row["positive"], *row["negatives"]])
    np.testing.assert_allclose(row["teacher_scores"], direct, rtol=1e-3)
    stats = json.loads(out["stats"].read_text())
    assert stats["teacher"]["scored"] == 2


def test_params_with_distillation_need_a_teacher_and_plain_infonce():
    params = default_params()
    params["train"]["distillation"] = 1.0
    with pytest.raises(InputError, match=r"p\.yaml: train\.distillation: needs teacher scores"):
        validate_params(params, "p.yaml")
    params["negatives"]["teacher"]["model"] = "embedded:smollm2-135m-instruct"
    with pytest.raises(InputError, match="needs backend sentence-transformers, loss mnrl"):
        validate_params(params, "p.yaml")  # the default loss is cached_mnrl
    params["train"]["loss"] = "mnrl"
    assert validate_params(params, "p.yaml")["train"]["distillation"] == 1.0
