"""Queries per second of the transformers backend (shared-prefix KV reuse, cache, batching, parsing)
against the naive batched call: model.generate on the same prompts, left-padded, in the same batches
(or in batches of --naive-batch-size: a plain call slows down with larger batches, its padding grows)
with the same seeds, in the same process, so their answers can be compared one by one (greedy, or
sampled with --temperature: every row draws from its own seeded generator in both paths).

    python benchmarks/generation_throughput.py --params params.yaml --docs results/docs.parquet \
        --configs results/configs.parquet --prompt prompts/queries_few_shot.yaml --n 64 --repeats 2

--samples k asks every prompt k times (best-of-k candidates, seeds seed .. seed + k - 1; needs
--temperature > 0). Each repeat times both paths (the order alternates); the generator starts from an
empty cache and no kept prompt prefix every time, so every call is made. Prints calls per second of
both, the speedup and how many answers are identical.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl
import torch

from synthembed.corpus import passages
from synthembed.generation import shown_text
from synthembed.llm import (
    CachedLLM,
    LLMCache,
    TransformersGenerator,
    batch_order,
    prefix_batches,
    sample_calls,
)
from synthembed.params import load_params
from synthembed.prompts import load_task_prompts, row_fields, task_messages, template_name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", required=True)
    parser.add_argument("--docs", required=True)
    parser.add_argument("--configs", required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument(
        "--naive-batch-size", type=int, help="batch of the naive call (default: llm.batch_size)"
    )
    args = parser.parse_args()
    params = load_params(args.params)
    params["llm"]["temperature"] = args.temperature

    configs = pl.read_parquet(args.configs).head(args.n)
    docs = pl.read_parquet(args.docs).select("doc_id", "title", "text")
    documents = passages(configs.select("doc_id").join(docs, on="doc_id", how="left", maintain_order="left"))
    prompt = load_task_prompts(args.prompt)
    requests = []
    for row, document in zip(configs.iter_rows(named=True), documents, strict=True):
        template = template_name(row["task_type"], row["domain"])
        requests.append(
            task_messages(
                prompt, template, row_fields(prompt, row, shown_text(template, document, params["queries"]))
            )
        )
    generator = TransformersGenerator(
        params["llm"], params["runtime"]["cache_dir"], params["runtime"]["device"]
    )
    seed = params["seed"]
    calls = sample_calls(requests, seed, args.samples)  # the generator's calls, in its order
    order = sorted(range(len(calls)), key=lambda c: batch_order(calls[c][0]))
    naive_batch_size = args.naive_batch_size or generator.batch_size

    def naive() -> list[str]:
        tokenizer, model = generator.tokenizer, generator.model
        answers = [""] * len(calls)
        for start, end in prefix_batches([calls[c][0] for c in order], naive_batch_size):
            chunk = order[start:end]
            encoded = tokenizer.apply_chat_template(
                [calls[c][0] for c in chunk],
                add_generation_prompt=True,
                return_tensors="pt",
                padding=True,
                return_dict=True,
            ).to(generator.device)
            with torch.inference_mode():
                decoding = generator.decoding_args(
                    encoded["input_ids"].shape[1], [calls[c][1] for c in chunk]
                )
                output = model.generate(**encoded, **decoding)
            texts = tokenizer.batch_decode(
                output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True
            )
            for i, text in zip(chunk, texts, strict=True):
                answers[i] = text.strip()
        return answers

    def generator_path() -> list[str]:
        generator.last_prefix = None  # no prompt prefix kept from an earlier repeat
        with tempfile.TemporaryDirectory() as folder:
            llm = CachedLLM(generator, LLMCache(Path(folder) / "llm.sqlite"))
            answers = llm.generate(requests, seed=seed, desc="generator", samples=args.samples)
            llm.cache.close()
        return answers

    times: dict[str, list[float]] = {"naive": [], "generator": []}
    answers: dict[str, list[str]] = {}
    for repeat in range(args.repeats):
        for name in ("naive", "generator") if repeat % 2 == 0 else ("generator", "naive"):
            started = time.perf_counter()
            answers[name] = (naive if name == "naive" else generator_path)()
            times[name].append(time.perf_counter() - started)
            print(f"repeat {repeat + 1} {name}: {times[name][-1]:.1f} s", flush=True)
    naive_s, generator_s = statistics.median(times["naive"]), statistics.median(times["generator"])
    identical = sum(a == b for a, b in zip(answers["naive"], answers["generator"], strict=True))
    print(
        json.dumps(
            {
                "prompts": len(requests),
                "samples": args.samples,
                "temperature": args.temperature,
                "batch_size": generator.batch_size,
                "naive_batch_size": naive_batch_size,
                "naive_calls_per_s": round(len(calls) / naive_s, 3),
                "generator_calls_per_s": round(len(calls) / generator_s, 3),
                "speedup": round(naive_s / generator_s, 2),
                "identical_answers": identical,
            }
        )
    )
    for a, b in zip(answers["naive"], answers["generator"], strict=True):
        if a != b:
            print(f"differs: {a!r} | {b!r}")


if __name__ == "__main__":
    main()
