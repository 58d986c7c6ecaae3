"""A teacher for the embedder: the query likelihood of a causal LM, log p(query | document), scored for
each retrieval pair's positive and mined negatives (unsupervised passage re-ranking, UPR).

The generator itself can be that teacher. As a reranker of the base embedder's top 20 for the first
100 of SciFact's dev claims (benchmarks/teacher_rerank.py), SmolLM2-135M's query likelihood lifts
nDCG@10 from 0.673 to 0.732: it knows something the embedder does not, which the model stage can
distil (``train.distillation``). On queries it wrote itself from the positive it ranks that positive
first 98 % of the time, so there is little left to distil from those.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
import torch
from tqdm.auto import tqdm

from synthembed.models import causal_lm_path, length_batches, load_causal_lm, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)


def scored_tokens(prompt: list[int], answer: list[int]) -> tuple[list[int], list[int]]:
    """Input ids of ``prompt + answer`` and their labels: -100 (not scored) over the prompt.

    >>> scored_tokens([5, 6], [7, 8])
    ([5, 6, 7, 8], [-100, -100, 7, 8])
    """
    return prompt + answer, [-100] * len(prompt) + answer


def teacher_prompt(tokenizer, instruction: str, document: str, doc_tokens: int) -> list[int]:
    """Token ids of the request that the query answers: ``instruction``, then the document cut to
    ``doc_tokens`` tokens, in the model's chat template, up to the start of its answer."""
    ids = tokenizer(document, add_special_tokens=False)["input_ids"][:doc_tokens]
    content = f"{instruction}\n\n{tokenizer.decode(ids)}"
    messages = [{"role": "user", "content": content}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def sequence_log_likelihoods(
    model, rows: Sequence[tuple[list[int], list[int]]], pad_id: int, batch_size: int
) -> np.ndarray:
    """Sum of log p(token | tokens before it) over the scored tokens of each (input ids, labels) row,
    batched by length with a progress bar.

    Rows are padded on the left, so every row's scored tokens end the batch: only their logits are
    computed (``logits_to_keep``), not the vocabulary-wide logits of every document token.
    """
    totals = np.zeros(len(rows))
    for batch in tqdm(length_batches([len(r[0]) for r in rows], batch_size), desc="teacher", unit="batch"):
        width = max(len(rows[i][0]) for i in batch)
        ids = torch.full((len(batch), width), pad_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, i in enumerate(batch):
            n = len(rows[i][0])
            ids[j, width - n :], labels[j, width - n :] = torch.tensor(rows[i][0]), torch.tensor(rows[i][1])
            mask[j, width - n :] = 1
        scored = max(sum(label != -100 for label in rows[i][1]) for i in batch)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # as if unpadded
        ids, mask, positions = ids.to(model.device), mask.to(model.device), positions.to(model.device)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=scored + 1)
        targets = labels[:, -scored:].to(model.device)
        log_p = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
        token_lp = log_p.gather(2, targets.clamp(min=0)[..., None])[..., 0]
        totals[batch] = (token_lp * (targets != -100)).sum(dim=1).cpu().numpy()
    return totals


def query_likelihood_scorer(
    model, tokenizer, instruction: str, doc_tokens: int, batch_size: int
) -> Callable[[list[str], list[str]], np.ndarray]:
    """A function of (queries, documents) giving log p(query + end of answer | instruction, document)
    per pair: the teacher's score. Each document's request is tokenised once."""
    end = tokenizer.eos_token or ""

    def score(queries: list[str], documents: list[str]) -> np.ndarray:
        prompts = {d: teacher_prompt(tokenizer, instruction, d, doc_tokens) for d in dict.fromkeys(documents)}
        rows = [
            scored_tokens(prompts[d], tokenizer(q + end, add_special_tokens=False)["input_ids"])
            for q, d in zip(queries, documents, strict=True)
        ]
        return sequence_log_likelihoods(model, rows, tokenizer.pad_token_id, batch_size)

    return score


def with_teacher_scores(
    pairs: pl.DataFrame, score: Callable[[list[str], list[str]], np.ndarray], task_types: list[str]
) -> pl.DataFrame:
    """Add ``teacher_scores``: the teacher's score of the positive, then of each negative, for rows of
    ``task_types`` (null for the others).

    >>> pairs = pl.DataFrame({"task_type": ["retrieval", "sts"], "anchor": ["ab", "c"],
    ...                       "positive": ["abc", "c"], "negatives": [["x", "ab"], ["y", "z"]]})
    >>> overlap = lambda queries, docs: np.array([len(set(q) & set(d)) for q, d in zip(queries, docs)])
    >>> with_teacher_scores(pairs, overlap, ["retrieval"])["teacher_scores"].to_list()
    [[2.0, 0.0, 2.0], None]
    """
    scored = pairs["task_type"].is_in(task_types).to_numpy()
    rows = pairs.filter(pl.Series(scored))
    candidates = [[p, *n] for p, n in zip(rows["positive"], rows["negatives"], strict=True)]
    queries = [a for a, c in zip(rows["anchor"], candidates, strict=True) for _ in c]
    flat = score(queries, [d for c in candidates for d in c]) if queries else np.zeros(0)
    offsets = np.cumsum([0] + [len(c) for c in candidates])
    values: list[list[float] | None] = [None] * pairs.height
    for row, start, stop in zip(np.flatnonzero(scored), offsets[:-1], offsets[1:], strict=True):
        values[row] = flat[start:stop].astype(float).tolist()
    logger.info("teacher scored %d candidates of %d pairs", len(queries), len(candidates))
    return pairs.with_columns(pl.Series("teacher_scores", values, dtype=pl.List(pl.Float64)))


def teacher_agreement(pairs: pl.DataFrame, temperature: float = 1.0) -> dict[str, Any]:
    """How often the teacher ranks a scored pair's positive above all its negatives, the mean rank it
    gives the positive (0 = first), and the mean probability it puts on the positive: the softmax of
    the scores divided by ``temperature`` (the negatives stage reports it at 1; distillation learns it
    at ``train.teacher_temperature``).

    >>> scored = pl.DataFrame({"teacher_scores": [[-1.0, -3.0], [-2.0, -1.0], None]})
    >>> teacher_agreement(scored)
    {'scored': 2, 'positive_first': 0.5, 'mean_positive_rank': 0.5, 'positive_probability': 0.5749}
    >>> [teacher_agreement(scored.head(1), t)["positive_probability"] for t in (1.0, 2.0)]
    [0.8808, 0.7311]
    """
    scores = pairs["teacher_scores"].drop_nulls().to_list()
    ranks = [sum(s > row[0] for s in row[1:]) for row in scores]
    positive_p = [float(torch.softmax(torch.tensor(row) / temperature, dim=0)[0]) for row in scores]
    return {
        "scored": len(scores),
        "positive_first": round(float(np.mean([r == 0 for r in ranks])), 4) if ranks else None,
        "mean_positive_rank": round(float(np.mean(ranks)), 4) if ranks else None,
        "positive_probability": round(float(np.mean(positive_p)), 4) if ranks else None,
    }


def load_teacher(
    cfg: dict[str, Any], runtime: dict[str, Any]
) -> Callable[[list[str], list[str]], np.ndarray]:
    """The ``query_likelihood_scorer`` of the ``negatives.teacher`` params: its causal LM (an embedded
    name, folder or HF id) on ``runtime['device']`` in ``cfg['dtype']``."""
    device = resolve_device(runtime["device"])
    path = causal_lm_path(cfg["model"], runtime["cache_dir"])
    tokenizer, model = load_causal_lm(path, device, dtype=resolve_dtype(cfg["dtype"], device))
    return query_likelihood_scorer(model, tokenizer, cfg["instruction"], cfg["doc_tokens"], cfg["batch_size"])


def score_with_teacher(pairs: pl.DataFrame, cfg: dict[str, Any], runtime: dict[str, Any]) -> pl.DataFrame:
    """``with_teacher_scores`` by the teacher of the ``negatives.teacher`` params, for the rows of
    ``cfg['task_types']``."""
    return with_teacher_scores(pairs, load_teacher(cfg, runtime), cfg["task_types"])
