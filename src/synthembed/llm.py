"""LLM calls behind one content-addressed cache.

Every call is keyed by backend, model, messages, sampling parameters and seed, and stored in a
SQLite file outside the stage outputs: a killed stage resumes without repeating finished calls, and a
rerun after an unrelated param edit makes no call at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from synthembed.models import causal_lm_path, resolve_device

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]


def call_key(backend: str, model: str, messages: Messages, sampling: dict[str, Any], seed: int) -> str:
    """The content address of one LLM call.

    >>> call_key("transformers", "m", [{"role": "user", "content": "hi"}], {"t": 0}, 1)[:12]
    '03d8eeafe51e'
    """
    payload = json.dumps(
        {"backend": backend, "model": model, "messages": messages, "sampling": sampling, "seed": seed},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class LLMCache:
    """A SQLite key -> output store, safe for several processes writing at once (WAL, busy timeout)."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(str(path), timeout=60, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, output TEXT NOT NULL)"
        )

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.connection.execute(f"SELECT key, output FROM calls WHERE key IN ({marks})", chunk)
            found.update(rows.fetchall())
        return found

    def put_many(self, items: dict[str, str]) -> None:
        with self.connection:  # one transaction per batch: a kill loses at most the batch in flight
            self.connection.executemany("INSERT OR REPLACE INTO calls VALUES (?, ?)", items.items())

    def close(self) -> None:
        self.connection.close()


class Generator(Protocol):
    """A backend that turns chat messages into completions, in order."""

    backend: str
    model_name: str
    sampling: dict[str, Any]

    def generate(self, batch: list[Messages], seed: int) -> list[str]: ...


class TransformersGenerator:
    """Local batched generation with transformers: chat template, left padding, seeded sampling."""

    backend = "transformers"

    def __init__(self, cfg: dict[str, Any], cache_dir: str | Path, device: str = "auto"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = cfg["model"]
        path = causal_lm_path(cfg["model"], cache_dir)
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(self.device).eval()
        self.sampling = {
            "max_new_tokens": cfg["max_new_tokens"],
            "temperature": cfg["temperature"],
            "top_p": cfg["top_p"],
            "repetition_penalty": cfg["repetition_penalty"],
            "stop": cfg["stop"],
        }

    def generate(self, batch: list[Messages], seed: int) -> list[str]:
        encoded = self.tokenizer.apply_chat_template(
            batch, add_generation_prompt=True, return_tensors="pt", padding=True, return_dict=True
        ).to(self.device)
        sample = self.sampling["temperature"] > 0
        torch.manual_seed(seed)
        with torch.inference_mode():
            output = self.model.generate(
                **encoded,
                max_new_tokens=self.sampling["max_new_tokens"],
                do_sample=sample,
                temperature=self.sampling["temperature"] if sample else None,
                top_p=self.sampling["top_p"] if sample else None,
                top_k=None,
                repetition_penalty=self.sampling["repetition_penalty"],
                stop_strings=self.sampling["stop"] or None,
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        return [text.strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


@dataclass
class CallStats:
    """LLM accounting for one stage."""

    calls: int = 0
    cache_hits: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"llm_calls": self.calls, "cache_hits": self.cache_hits, "failures": self.failures}


class CachedLLM:
    """Generation through the cache: only prompts never answered before reach the backend."""

    def __init__(self, generator: Generator, cache: LLMCache, batch_size: int):
        self.generator = generator
        self.cache = cache
        self.batch_size = batch_size
        self.stats = CallStats()

    def key(self, messages: Messages, seed: int) -> str:
        g = self.generator
        return call_key(g.backend, g.model_name, messages, g.sampling, seed)

    def generate(self, prompts: list[Messages], seed: int, desc: str = "generating") -> list[str]:
        """Completions for ``prompts`` in order; cached answers are reused, new ones stored per batch."""
        keys = [self.key(m, seed) for m in prompts]
        answers = self.cache.get_many(keys)
        first_index = {k: i for i, k in reversed(list(enumerate(keys)))}
        missing = [first_index[k] for k in dict.fromkeys(keys) if k not in answers]
        self.stats.cache_hits += len(keys) - len(missing)
        logger.info("%s: %d prompts, %d to generate", desc, len(keys), len(missing))
        # Similar lengths in a batch waste less padding; the order does not change any answer's key.
        missing.sort(key=lambda i: len(json.dumps(prompts[i])))
        with tqdm(total=len(missing), desc=desc, unit="call") as progress:
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start : start + self.batch_size]
                outputs = self.generator.generate([prompts[i] for i in chunk], seed=seed + start)
                new = {keys[i]: out for i, out in zip(chunk, outputs, strict=True)}
                self.cache.put_many(new)
                answers.update(new)
                self.stats.calls += len(chunk)
                progress.update(len(chunk))
        return [answers[k] for k in keys]


def open_llm(cfg: dict[str, Any], runtime: dict[str, Any]) -> CachedLLM:
    """The configured backend behind the shared cache in ``runtime.cache_dir``."""
    if cfg["backend"] != "transformers":
        raise ValueError(f"unknown llm backend {cfg['backend']!r}")
    generator = TransformersGenerator(cfg, runtime["cache_dir"], runtime["device"])
    cache = LLMCache(Path(runtime["cache_dir"]) / "llm.sqlite")
    return CachedLLM(generator, cache, cfg["batch_size"])
