"""LLM calls behind one content-addressed cache, with two backends.

Every call is keyed by backend, model, messages, sampling parameters, output schema and seed, and
stored in a SQLite file outside the stage outputs as soon as it finishes: a killed stage resumes
without repeating finished calls, and a rerun after an unrelated param edit makes no call at all.

Backends: ``transformers`` (local, batched) and ``openai`` (any OpenAI-compatible server: vLLM,
SGLang, llama.cpp, Ollama or a hosted API; concurrent requests with retries).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm
from transformers import (
    Cache,
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from synthembed.models import causal_lm_path, load_causal_lm, resolve_device
from synthembed.prefix_cache import shared_prefix_attention_on, shared_prefix_cache

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Completion:
    """One answer, or the kind of failure that left a call without one (``text`` None)."""

    text: str | None
    tokens_in: int = 0
    tokens_out: int = 0
    error: str | None = None


OnDone = Callable[[list[tuple[int, Completion]]], None]


def call_key(
    backend: str,
    model: str,
    messages: Messages,
    sampling: dict[str, Any],
    seed: int,
    schema: dict[str, Any] | None = None,
) -> str:
    """The content address of one LLM call.

    >>> call_key("transformers", "m", [{"role": "user", "content": "hi"}], {"t": 0}, 1)[:12]
    '03d8eeafe51e'
    """
    payload = {"backend": backend, "model": model, "messages": messages, "sampling": sampling, "seed": seed}
    if schema is not None:  # absent rather than null: keys of schema-free calls never change
        payload["schema"] = schema
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class LLMCache:
    """A SQLite key -> completion store, safe for several processes writing at once (WAL, busy timeout)."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(str(path), timeout=60, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, output TEXT NOT NULL,"
            " tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0)"
        )
        columns = {row[1] for row in self.connection.execute("PRAGMA table_info(calls)")}
        for column in ("tokens_in", "tokens_out"):  # caches written before token accounting
            if column not in columns:
                self.connection.execute(f"ALTER TABLE calls ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.connection.execute(
                f"SELECT key, output, tokens_in, tokens_out FROM calls WHERE key IN ({marks})", chunk
            )
            found.update((key, Completion(text, t_in, t_out)) for key, text, t_in, t_out in rows)
        return found

    def put_many(self, items: dict[str, Completion]) -> None:
        # One transaction per group (the connection commits every statement unless told otherwise): a
        # kill loses at most the calls in flight. IMMEDIATE takes the write lock at once, so two writers
        # wait on the busy timeout instead of failing to upgrade a read lock.
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            self.connection.executemany(
                "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?)",
                [(k, c.text, c.tokens_in, c.tokens_out) for k, c in items.items()],
            )
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()


class Generator(Protocol):
    """A backend: answers requests (request i with seed ``seeds[i]``) and reports each group of
    finished ones through ``on_done``."""

    backend: str
    model_name: str
    sampling: dict[str, Any]

    def run(
        self, requests: list[Messages], seeds: list[int], schema: dict[str, Any] | None, on_done: OnDone
    ) -> None: ...


class TransformersGenerator:
    """Local batched generation with transformers: chat template, left padding, seeded sampling.

    ``schema`` is not enforced here: small local models follow the prompt's format, and the
    answer is parsed strictly afterwards.
    """

    backend = "transformers"

    def __init__(
        self, cfg: dict[str, Any], cache_dir: str | Path, device: str = "auto", model_name: str | None = None
    ):
        self.model_name = model_name or cfg["model"]
        self.batch_size = cfg["batch_size"]
        self.device = resolve_device(device)
        self.tokenizer, self.model = load_causal_lm(causal_lm_path(cfg["model"], cache_dir), self.device)
        self.last_prefix: tuple[list[int], DynamicCache] | None = None  # see prompt_prefix
        self.sampling = {
            "max_new_tokens": cfg["max_new_tokens"],
            "temperature": cfg["temperature"],
            "top_p": cfg["top_p"],
            "repetition_penalty": cfg["repetition_penalty"],
            "repetition_penalty_on": cfg["repetition_penalty_on"],
            "stop": cfg["stop"],
        }

    def generate(self, batch: list[Messages], seeds: list[int]) -> list[Completion]:
        """One batch, row i sampled with ``seeds[i]``; the prompt tokens every row shares are run once
        and their KV cache reused.

        Rows are laid out as ``shared prefix | padding | own suffix`` with the padding masked out,
        so positions and attention are those of each row alone, and each row draws its tokens from its
        own seeded generator (``GumbelSampler``): a row's answer is the one it gets asked alone (greedy
        or sampled, up to float rounding), whatever else shares its batch, at a fraction of the prompt
        cost when the rows share a system message and worked examples. The prefix's keys and values
        are kept once for the batch, not copied per row (``synthembed.prefix_cache``), and reused by
        the next batches that start with them (``prompt_prefix``). The rows' own tokens run unpadded,
        and consecutive rows with the same prompt (samples of one request) run its tokens once and
        part only when they sample.
        """
        chat = self.tokenizer.apply_chat_template
        rows = [chat(m, add_generation_prompt=True, return_dict=True)["input_ids"] for m in batch]
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode(), shared_prefix_attention_on(self.model):
            shared, prefix = self.prompt_prefix(rows)
            width = max(len(r) for r in rows) - shared
            input_ids = torch.tensor(
                [r[:shared] + [pad] * (shared + width - len(r)) + r[shared:] for r in rows]
            )
            attention_mask = torch.tensor(
                [[1] * shared + [0] * (shared + width - len(r)) + [1] * (len(r) - shared) for r in rows]
            )
            cache = self.prompt_cache(rows, input_ids, prefix) if prefix is not None else None
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                past_key_values=cache,
                **self.decoding_args(input_ids.shape[1], seeds),
            )
        new_tokens = output[:, input_ids.shape[1] :].cpu()
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        tokens_out = (new_tokens != pad).sum(dim=1).tolist()
        return [Completion(t.strip(), len(r), o) for t, r, o in zip(texts, rows, tokens_out, strict=True)]

    def decoding_args(self, prompt_width: int, seeds: list[int]) -> dict[str, Any]:
        """The ``model.generate`` arguments of the sampling params, for a batch of prompts ``prompt_width``
        tokens wide (padding included), so the answers start at that column, row i seeded ``seeds[i]``.

        With ``repetition_penalty_on: answer`` only the tokens generated so far are penalised. transformers'
        own penalty also counts the prompt's: a small model then shuns the document's words and the token
        that ends its answer, and writes on with made-up ones.

        ``generate`` decodes greedily either way: with temperature > 0 the temperature and top-p warpers
        and the per-row Gumbel noise of ``GumbelSampler`` follow the penalty, so the argmax is a sample.
        transformers' own sampling draws every row from one global generator: a row's answer would then
        depend on the rows that share its batch, and a rerun in other batches would not reproduce it.
        """
        penalty = self.sampling["repetition_penalty"]
        on_answer = self.sampling["repetition_penalty_on"] == "answer"
        processors: list[LogitsProcessor] = []
        if on_answer and penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(float(penalty), prompt_width))
        if self.sampling["temperature"] > 0:
            processors.append(TemperatureLogitsWarper(float(self.sampling["temperature"])))
            if self.sampling["top_p"] < 1.0:
                processors.append(TopPLogitsWarper(float(self.sampling["top_p"])))
            processors.append(GumbelSampler(seeds, self.device))
        return {
            "max_new_tokens": self.sampling["max_new_tokens"],
            "do_sample": False,
            "temperature": None,
            "top_p": None,
            "top_k": None,
            "repetition_penalty": None if on_answer else penalty,
            "logits_processor": LogitsProcessorList(processors),
            "stop_strings": self.sampling["stop"] or None,
            "tokenizer": self.tokenizer,
            "pad_token_id": self.tokenizer.pad_token_id,
        }

    def prompt_prefix(self, rows: list[list[int]]) -> tuple[int, DynamicCache | None]:
        """How many leading tokens the rows share, and the KV cache of those tokens (None: none shared).

        Batches of one prompt template share its system message and worked examples, so the last
        batch's prefix is reused whenever it starts every row and running the tokens the rows share
        beyond it as their own costs less than a new prefix; otherwise the shared tokens run once here
        and are kept for the next batch.
        """
        shared = shared_prefix_length(rows)
        if self.last_prefix is not None:
            tokens, cache = self.last_prefix
            starts_every_row = len(tokens) <= shared and rows[0][: len(tokens)] == tokens
            if starts_every_row and (shared - len(tokens)) * len(rows) < shared:
                return len(tokens), cache
        if not shared:
            return 0, None
        prefix = torch.tensor([rows[0][:shared]], device=self.device)
        cache = self.model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
        self.last_prefix = (rows[0][:shared], cache)
        return shared, cache

    def prompt_cache(self, rows: list[list[int]], input_ids: torch.Tensor, prefix: DynamicCache) -> Cache:
        """The KV cache of every row's prompt but its last token, which ``generate`` runs: ``prefix``'s
        tokens once for the batch, then the rest of each distinct prompt once, unpadded (the rows one
        after another in one sequence), repeated for the consecutive rows that ask it again.
        ``input_ids`` is the batch laid out for ``generate``; each row's tokens end where it ends."""
        shared = prefix.get_seq_length()
        firsts, copies = repeated_rows(input_ids)
        own = [rows[i][shared:-1] for i in firsts.tolist()]
        capacity = input_ids.shape[1] - shared + self.sampling["max_new_tokens"]
        cache = shared_prefix_cache(prefix, len(own), capacity)
        lengths = [len(tokens) for tokens in own]
        if any(lengths):
            for layer in cache.layers:
                layer.pack(lengths)
            self.model(
                input_ids=torch.tensor([[token for tokens in own for token in tokens]], device=self.device),
                position_ids=torch.tensor(
                    [[position for n in lengths for position in range(shared, shared + n)]],
                    device=self.device,
                ),
                # a prepared mask, never used: packed attention masks each row's stretch itself, and
                # the model would otherwise build one over the whole sequence, quadratic in its length
                attention_mask=torch.ones(1, 1, 1, 1, dtype=torch.bool, device=self.device),
                past_key_values=cache,
                logits_to_keep=1,
            )
        if len(firsts) < len(input_ids):
            for layer in cache.layers:
                layer.repeat_rows(copies.to(self.device))
        return cache

    def run(
        self, requests: list[Messages], seeds: list[int], schema: dict[str, Any] | None, on_done: OnDone
    ) -> None:
        for start, end in prefix_batches(requests, self.batch_size):
            on_done(list(enumerate(self.generate(requests[start:end], seeds[start:end]), start=start)))


class GumbelSampler(LogitsProcessor):
    """Sampling as greedy decoding: adds Gumbel noise to each row's (warped) scores, drawn from that
    row's own generator seeded ``seeds[i]``, so their argmax is an exact sample of softmax(scores)
    and a row's draws depend on its seed alone, not on the rows beside it.

    >>> sampler = GumbelSampler([7, 7, 8], "cpu")
    >>> noisy = sampler(torch.zeros(3, 1, dtype=torch.long), torch.zeros(3, 5))
    >>> bool((noisy[0] == noisy[1]).all()), bool((noisy[0] == noisy[2]).all())
    (True, False)
    >>> sampler(None, torch.tensor([[0.0, float("-inf")]] * 3)).argmax(dim=-1).tolist()  # not a masked one
    [0, 0, 0]
    """

    def __init__(self, seeds: list[int], device: str):
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = scores.shape[-1]
        uniform = torch.stack(
            [
                torch.rand(vocab, generator=g, device=scores.device, dtype=scores.dtype)
                for g in self.generators
            ]
        )
        # at least the smallest normal float: log(0) would give a -inf draw, and -inf + inf a nan score
        gumbel = -torch.log(-torch.log(uniform.clamp_(min=torch.finfo(scores.dtype).tiny)))
        return scores + gumbel


def repeated_rows(input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first row of each run of identical consecutive rows, and the run lengths.

    >>> repeated_rows(torch.tensor([[1, 2], [1, 2], [3, 4], [1, 2]]))
    (tensor([0, 2, 3]), tensor([2, 1, 1]))
    """
    starts = torch.ones(len(input_ids), dtype=torch.bool)
    starts[1:] = (input_ids[1:] != input_ids[:-1]).any(dim=1)
    firsts = starts.nonzero().flatten()
    return firsts, torch.diff(firsts, append=torch.tensor([len(input_ids)]))


def shared_prefix_length(rows: list[list[int]]) -> int:
    """How many leading tokens all rows share, leaving every row at least one token of its own.

    >>> shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]])
    2
    >>> shared_prefix_length([[7, 8], [7, 8]])
    1
    """
    limit = min(len(r) for r in rows) - 1
    length = 0
    while length < limit and all(r[length] == rows[0][length] for r in rows):
        length += 1
    return length


def prefix_batches(requests: list[Messages], batch_size: int) -> list[tuple[int, int]]:
    """Consecutive batches of at most ``batch_size`` requests. A run of different requests with the
    same earlier turns (system message, worked examples) is batched on its own, so each batch shares
    their whole prompt prefix; consecutive requests whose earlier turns are their own (worked examples
    chosen per document), alone or repeated (samples), are batched together and share what their
    prompts have in common.

    >>> system = lambda text: [{"role": "system", "content": text}, {"role": "user", "content": "q"}]
    >>> ask = lambda text: [{"role": "system", "content": "s"}, {"role": "user", "content": text}]
    >>> prefix_batches([ask("x"), ask("y"), ask("z"), system("b"), system("b")], batch_size=2)
    [(0, 2), (2, 3), (3, 5)]
    >>> prefix_batches([system(text) for text in "abcd"] + [ask("x"), ask("y")], batch_size=3)
    [(0, 3), (3, 4), (4, 6)]
    >>> prefix_batches([system(text) for text in "aabbc"], batch_size=3)
    [(0, 3), (3, 5)]
    """
    runs: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(requests) + 1):
        if i == len(requests) or requests[i][:-1] != requests[start][:-1]:
            runs.append((start, i))
            start = i
    batches: list[tuple[int, int]] = []
    open_start = None  # first request of the open batch of requests with earlier turns of their own
    for run_start, run_end in runs:
        if any(requests[i] != requests[run_start] for i in range(run_start + 1, run_end)):
            if open_start is not None:
                batches.append((open_start, run_start))
                open_start = None
            batches += [(b, min(b + batch_size, run_end)) for b in range(run_start, run_end, batch_size)]
            continue
        for i in range(run_start, run_end):
            if open_start is None or i - open_start == batch_size:
                if open_start is not None:
                    batches.append((open_start, i))
                open_start = i
    if open_start is not None:
        batches.append((open_start, len(requests)))
    return batches


RETRIED_STATUS = {408, 409, 429} | set(range(500, 600))


def failure_kind(err: BaseException) -> str:
    """A short name for what went wrong with a request: http_<status>, timeout, connection or the type."""
    import openai

    if isinstance(err, openai.APIStatusError):
        return f"http_{err.status_code}"
    if isinstance(err, openai.APITimeoutError):  # a subclass of APIConnectionError: test it first
        return "timeout"
    if isinstance(err, openai.APIConnectionError):
        return "connection"
    return type(err).__name__


def retryable(err: BaseException) -> bool:
    """Rate limits, server errors, timeouts and dropped connections are worth another try."""
    import openai

    if isinstance(err, openai.APIStatusError):
        return err.status_code in RETRIED_STATUS
    return isinstance(err, openai.APIConnectionError)


class OpenAIGenerator:
    """Any OpenAI-compatible chat completions server, with concurrent requests and retries.

    At most ``concurrency`` requests are in flight. 408, 409, 429, 5xx, timeouts and connection
    errors are retried ``max_retries`` times with exponential backoff and jitter (a Retry-After
    header wins); other errors fail the call at once. A failed call is reported, never cached.
    """

    backend = "openai"

    def __init__(self, cfg: dict[str, Any]):
        self.model_name = cfg["model"]
        self.base_url = server_url(cfg["base_url"])
        self.api_key = api_key(cfg["api_key_env"])
        self.concurrency = cfg["concurrency"]
        self.max_retries = cfg["max_retries"]
        self.timeout_s = cfg["timeout_s"]
        self.response_format = cfg["response_format"]
        self.sampling = {
            "max_new_tokens": cfg["max_new_tokens"],
            "temperature": cfg["temperature"],
            "top_p": cfg["top_p"],
            "stop": cfg["stop"],
            "response_format": cfg["response_format"],
            "extra_body": cfg["extra_body"],
        }
        self.retries: dict[str, int] = {}

    def request_args(self, messages: Messages, seed: int, schema: dict[str, Any] | None) -> dict[str, Any]:
        """Arguments of ``chat.completions.create`` for one call.

        >>> cfg = {"model": "m", "base_url": "http://h/v1", "api_key_env": None, "concurrency": 1,
        ...        "max_retries": 0, "timeout_s": 5, "response_format": "json_schema", "extra_body": {},
        ...        "max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "stop": []}
        >>> OpenAIGenerator(cfg).request_args([], 3, {"type": "object"})["response_format"]["type"]
        'json_schema'
        """
        args: dict[str, Any] = {
            "model": self.model_name,
            "messages": messages,
            "max_tokens": self.sampling["max_new_tokens"],
            "temperature": self.sampling["temperature"],
            "top_p": self.sampling["top_p"],
            "seed": seed,
        }
        if self.sampling["stop"]:
            args["stop"] = self.sampling["stop"]
        if schema is not None and self.response_format == "json_object":
            args["response_format"] = {"type": "json_object"}
        elif schema is not None and self.response_format == "json_schema":
            args["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True},
            }
        if self.sampling["extra_body"]:
            args["extra_body"] = self.sampling["extra_body"]
        return args

    async def call(self, client, messages: Messages, seed: int, schema: dict[str, Any] | None) -> Completion:
        import openai
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        def wait(state) -> float:
            err = state.outcome.exception()
            retry_after = (
                err.response.headers.get("retry-after") if isinstance(err, openai.APIStatusError) else None
            )
            return backoff_seconds(state.attempt_number - 1, retry_after)

        def count(state) -> None:
            kind = failure_kind(state.outcome.exception())
            self.retries[kind] = self.retries.get(kind, 0) + 1

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.max_retries + 1),
                wait=wait,
                retry=retry_if_exception(retryable),
                before_sleep=count,
                reraise=True,
            ):
                with attempt:
                    response = await client.chat.completions.create(
                        **self.request_args(messages, seed, schema)
                    )
        except openai.OpenAIError as err:
            return Completion(None, error=failure_kind(err))
        usage = response.usage
        return Completion(
            response.choices[0].message.content or "",
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )

    async def run_async(
        self, requests: list[Messages], seeds: list[int], schema: dict[str, Any] | None, on_done: OnDone
    ) -> None:
        from openai import AsyncOpenAI

        limit = asyncio.Semaphore(self.concurrency)
        async with AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=self.timeout_s
        ) as client:

            async def one(i: int) -> None:
                async with limit:
                    completion = await self.call(client, requests[i], seeds[i], schema)
                on_done([(i, completion)])

            await asyncio.gather(*(one(i) for i in range(len(requests))))

    def run(
        self, requests: list[Messages], seeds: list[int], schema: dict[str, Any] | None, on_done: OnDone
    ) -> None:
        asyncio.run(self.run_async(requests, seeds, schema, on_done))


BASE_URL_ENV = "SYNTHEMBED_LLM_BASE_URL"


def server_url(base_url: str) -> str:
    """The server to ask: ``SYNTHEMBED_LLM_BASE_URL`` when set (where a cluster run finds its server;
    answers do not depend on it, so no stage reruns), else ``llm.base_url``.

    >>> server_url("http://127.0.0.1:8000/v1")
    'http://127.0.0.1:8000/v1'
    """
    return os.environ.get(BASE_URL_ENV) or base_url


def api_key(env_name: str | None) -> str:
    """The API key from the environment variable named in params; local servers take any key.

    >>> api_key(None)
    'none'
    """
    if env_name is None:
        return "none"
    key = os.environ.get(env_name)
    if not key:
        raise ValueError(f"llm.api_key_env names {env_name}, which is not set in the environment")
    return key


def backoff_seconds(attempt: int, retry_after: str | None, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with jitter; a numeric Retry-After header wins.

    >>> backoff_seconds(0, "2")
    2.0
    >>> 0.5 <= backoff_seconds(0, None) <= 0.75 and 4.0 <= backoff_seconds(3, None) <= 6.0
    True
    """
    if retry_after is not None:
        try:
            return min(float(retry_after), cap)
        except ValueError:
            pass  # an HTTP date: fall back to our own schedule
    return min(base * 2**attempt, cap) * (1 + random.random() / 2)


@dataclass
class CallStats:
    """LLM accounting for one stage: calls made now, cache hits, tokens, failures and retries by kind.

    ``tokens_*`` count the calls made in this run; ``tokens_*_total`` also count the cached answers
    used, i.e. what the stage's output cost to generate. ``at_token_limit`` counts the answers used
    that filled ``max_new_tokens``: most were cut short. They are kept, and the filter judges them.
    """

    calls: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_in_total: int = 0
    tokens_out_total: int = 0
    at_token_limit: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)

    def as_dict(self, price_per_million: dict[str, float] | None = None) -> dict[str, Any]:
        """The stats as written to a stage's JSON, with costs when prices per million tokens are set.

        >>> CallStats(calls=2, tokens_in=1000, tokens_out=500).as_dict({"input": 1.0, "output": 2.0})["cost"]
        0.002
        """
        out: dict[str, Any] = {
            "llm_calls": self.calls,
            "cache_hits": self.cache_hits,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens_in_total": self.tokens_in_total,
            "tokens_out_total": self.tokens_out_total,
            "at_token_limit": self.at_token_limit,
            "failures": self.failures,
            "retries": self.retries,
        }
        if price_per_million:
            price_in, price_out = price_per_million["input"] / 1e6, price_per_million["output"] / 1e6
            out["cost"] = round(self.tokens_in * price_in + self.tokens_out * price_out, 6)
            out["cost_total"] = round(self.tokens_in_total * price_in + self.tokens_out_total * price_out, 6)
        return out


def sample_calls(prompts: list[Messages], seed: int, samples: int) -> list[tuple[Messages, int]]:
    """The calls that ask every prompt ``samples`` times: every prompt with ``seed``, then every prompt
    with ``seed + 1``, ...

    >>> [(m[0]["content"], s) for m, s in sample_calls([[{"role": "user", "content": "a"}],
    ...                                                  [{"role": "user", "content": "b"}]], 3, 2)]
    [('a', 3), ('b', 3), ('a', 4), ('b', 4)]
    """
    return [(prompts[c % len(prompts)], seed + c // len(prompts)) for c in range(len(prompts) * samples)]


def call_seed(key: str) -> int:
    """The seed the backend samples one call with, drawn from the call's key: prompts asked with the same
    round seed get independent draws (one seed for all would add the same noise to every prompt's
    scores, and similar documents would get the same answer).

    >>> call_seed("03d8eeafe51e" + "0" * 52), call_seed("f" * 64) < 2**63
    (17327113519620096, True)
    """
    return int(key[:15], 16)


def batch_order(messages: Messages) -> tuple[str, int, str]:
    """Sort key of the calls to make: requests with the same earlier turns together (they share a long
    prompt prefix, run once per batch), then by length (less padding), repeats of one request next to
    each other (its prompt runs once). The order changes no answer's key.

    >>> ask = lambda text: [{"role": "system", "content": "s"}, {"role": "user", "content": text}]
    >>> sorted(["ccc", "a", "bb", "a"], key=lambda text: batch_order(ask(text)))
    ['a', 'a', 'bb', 'ccc']
    """
    return json.dumps(messages[:-1]), len(json.dumps(messages[-1])), json.dumps(messages[-1])


class CachedLLM:
    """Generation through the cache: only prompts never answered before reach the backend."""

    def __init__(
        self, generator: Generator, cache: LLMCache, price_per_million: dict[str, float] | None = None
    ):
        self.generator = generator
        self.cache = cache
        self.price_per_million = price_per_million
        self.stats = CallStats()

    @property
    def model_name(self) -> str:
        """The model that answers, as its cache keys name it."""
        return self.generator.model_name

    def key(self, messages: Messages, seed: int, schema: dict[str, Any] | None = None) -> str:
        g = self.generator
        sampling = g.sampling
        # a sampled answer depends on how its seed is drawn (call_seed); a greedy one does not
        if sampling["temperature"] > 0:
            sampling = sampling | {"seeding": "call_seed"}
        return call_key(g.backend, g.model_name, messages, sampling, seed, schema)

    def generate(
        self,
        prompts: list[Messages],
        seed: int,
        desc: str = "generating",
        schema: dict[str, Any] | None = None,
        samples: int = 1,
    ) -> list[str | None]:
        """Completions for ``prompts`` in order (None where the call failed); cached answers are reused,
        new ones stored as soon as the backend reports them.

        ``samples`` > 1 returns ``samples`` answers per prompt, seeded ``seed``, ``seed + 1``, ...: the
        answers of every prompt for the first seed, then for the next. They are the calls, and the
        cache keys, of one call per seed; asked together, the samples of one prompt share its tokens.
        The backend samples each call with ``call_seed`` of its key.
        """
        calls = sample_calls(prompts, seed, samples)
        keys = [self.key(m, s, schema) for m, s in calls]
        answers = self.cache.get_many(keys)
        first_index = {k: i for i, k in reversed(list(enumerate(keys)))}
        missing = [first_index[k] for k in dict.fromkeys(keys) if k not in answers]
        self.stats.cache_hits += len(keys) - len(missing)
        logger.info("%s: %d calls, %d to generate", desc, len(keys), len(missing))
        missing.sort(key=lambda c: batch_order(calls[c][0]))  # stable: samples of a prompt in seed order
        failed: dict[str, str] = {}
        with tqdm(total=len(missing), desc=desc, unit="call") as progress:

            def on_done(done: list[tuple[int, Completion]]) -> None:
                finished = {}
                for position, completion in done:
                    key = keys[missing[position]]
                    self.stats.calls += 1
                    if completion.text is None:
                        failed[key] = completion.error or "unknown"
                        self.stats.failures[failed[key]] = self.stats.failures.get(failed[key], 0) + 1
                    else:
                        finished[key] = completion
                        self.stats.tokens_in += completion.tokens_in
                        self.stats.tokens_out += completion.tokens_out
                self.cache.put_many(finished)
                answers.update(finished)
                progress.update(len(done))

            self.generator.run(
                [calls[c][0] for c in missing], [call_seed(keys[c]) for c in missing], schema, on_done
            )
        for kind, count in getattr(self.generator, "retries", {}).items():
            self.stats.retries[kind] = count
        for key in dict.fromkeys(keys):
            if key in answers:
                self.stats.tokens_in_total += answers[key].tokens_in
                self.stats.tokens_out_total += answers[key].tokens_out
                self.stats.at_token_limit += (
                    answers[key].tokens_out >= self.generator.sampling["max_new_tokens"]
                )
        return [answers[k].text if k in answers else None for k in keys]

    def stats_dict(self) -> dict[str, Any]:
        return self.stats.as_dict(self.price_per_million)


def open_llm(cfg: dict[str, Any], runtime: dict[str, Any], model_name: str | None = None) -> CachedLLM:
    """The configured backend behind the shared cache in ``runtime.cache_dir``.

    ``model_name`` names a local model in cache keys when its path does not identify it (a stage
    output such as results/doc2query holds another model after every run).
    """
    if cfg["backend"] == "transformers":
        generator: Generator = TransformersGenerator(cfg, runtime["cache_dir"], runtime["device"], model_name)
    elif cfg["backend"] == "openai":
        generator = OpenAIGenerator(cfg)
    else:
        raise ValueError(f"unknown llm backend {cfg['backend']!r}")
    cache = LLMCache(Path(runtime["cache_dir"]) / "llm.sqlite")
    return CachedLLM(generator, cache, cfg["price_per_million_tokens"])
