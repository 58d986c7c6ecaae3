"""Self-trained doc2query: the small generator fine-tuned on the corpus's own structural pairs
(query <- document), so it writes the corpus's kind of query without worked examples.

The training messages and the queries stage's requests come from one function, ``doc2query_messages``,
so the model is asked exactly what it was trained on.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import torch

from synthembed.io import read_yaml_mapping
from synthembed.llm import Messages
from synthembed.prompts import RETRIEVAL_TEMPLATES, truncate
from synthembed.teacher import scored_tokens

CODE_KINDS = {"docstring"}  # structural kinds whose positive is code


def load_doc2query_prompt(path: str | Path) -> dict[str, str]:
    """The doc2query prompt file: a system message and one template per retrieval template."""
    prompt = read_yaml_mapping(path)
    for key in ("system", *RETRIEVAL_TEMPLATES):
        if not isinstance(prompt.get(key), str) or (key != "system" and "{document}" not in prompt[key]):
            raise ValueError(
                f"{path}: needs '{key}' as text" + ("" if key == "system" else " with {document}")
            )
    return prompt


def model_fingerprint(folder: str | Path) -> str:
    """A name for a fine-tuned model folder that changes with its content (for the LLM cache keys)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"doc2query:{digest.hexdigest()[:16]}"


def doc2query_messages(prompt: dict[str, str], template: str, document: str, doc_chars: int) -> Messages:
    """The request for one document, in training and in generation alike.

    >>> prompt = {"system": "S", "retrieval": "Text: {document}", "retrieval_code": "Code: {document}"}
    >>> doc2query_messages(prompt, "retrieval", "alpha beta gamma", 12)
    [{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': 'Text: alpha beta'}]
    """
    return [
        {"role": "system", "content": prompt["system"]},
        {"role": "user", "content": prompt[template].format(document=truncate(document, doc_chars))},
    ]


def training_examples(
    structural: pl.DataFrame, prompt: dict[str, str], cfg: dict[str, Any], seed: int
) -> list[tuple[Messages, str]]:
    """(request, answer) pairs from structural pairs: a seeded sample of ``cfg['max_pairs']``.

    >>> pairs = pl.DataFrame({"kind": ["title", "docstring"], "query": ["a title", "Sort a list."],
    ...                       "positive": ["body text", "def f(x): return sorted(x)"]})
    >>> prompt = {"system": "S", "retrieval": "T: {document}", "retrieval_code": "F: {document}"}
    >>> examples = training_examples(pairs, prompt, {"max_pairs": 5, "doc_chars": 40}, seed=0)
    >>> [(messages[1]["content"], answer) for messages, answer in examples]
    [('T: body text', 'a title'), ('F: def f(x): return sorted(x)', 'Sort a list.')]
    """
    if structural.height > cfg["max_pairs"]:
        structural = structural.sample(cfg["max_pairs"], seed=seed, shuffle=False)
    return [
        (
            doc2query_messages(
                prompt,
                "retrieval_code" if row["kind"] in CODE_KINDS else "retrieval",
                row["positive"],
                cfg["doc_chars"],
            ),
            row["query"],
        )
        for row in structural.iter_rows(named=True)
    ]


def encode_example(
    tokenizer, messages: Messages, answer: str, max_length: int
) -> tuple[list[int], list[int]] | None:
    """Token ids of request + answer + end of turn, and labels that score the answer only; None when
    longer than ``max_length`` (a cut request would teach answers to prompts never asked)."""
    chat = tokenizer.apply_chat_template
    request = chat(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    reply = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(request) + len(reply) > max_length:
        return None
    return scored_tokens(request, reply)


def fine_tune(
    model,
    tokenizer,
    examples: list[tuple[Messages, str]],
    cfg: dict[str, Any],
    seed: int,
    on_step: Callable[[int, float], None] = lambda step, loss: None,
) -> tuple[list[dict[str, float]], int]:
    """Full fine-tune of a causal LM on (request, answer) pairs: AdamW, linear decay, loss on answers.

    Runs ``cfg['max_steps']`` steps of ``cfg['batch_size']`` examples (cycling through a seeded
    shuffle of those within ``cfg['max_length']`` tokens) and returns the loss of every step and the
    number of examples left out as too long.
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    fitting = [encode_example(tokenizer, *examples[i], cfg["max_length"]) for i in order]
    encoded = [e for e in fitting if e is not None]
    if not encoded:
        raise ValueError(
            f"doc2query: no structural pair to train on within {cfg['max_length']} tokens "
            f"({len(examples)} pairs; see the structural stage's stats and doc2query.max_length)"
        )
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / cfg["max_steps"])
    pad = tokenizer.pad_token_id  # load_causal_lm sets one
    device = next(model.parameters()).device
    model.train()
    curve = []
    for step in range(cfg["max_steps"]):
        start = step * cfg["batch_size"]
        batch = [encoded[(start + j) % len(encoded)] for j in range(cfg["batch_size"])]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=device)
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch], device=device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch], device=device)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        curve.append({"step": step + 1, "loss": loss.item()})
        on_step(step + 1, loss.item())
    model.eval()
    return curve, len(fitting) - len(encoded)
