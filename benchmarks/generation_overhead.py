"""Throughput of the transformers backend (cache, chat template, batching, parsing) against calling
model.generate directly on the same prompts, in the same process, on the same batches.

    python benchmarks/generation_overhead.py --params params.yaml --docs results/docs.parquet \
        --configs results/configs.parquet --prompt prompts/queries_few_shot.yaml --n 64 --repeats 2

Each repeat times both paths (the order alternates); the wrapper starts from an empty cache every
time, so every prompt is generated. Prints calls per second of both and the overhead.
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
from synthembed.llm import CachedLLM, LLMCache, TransformersGenerator
from synthembed.params import load_params
from synthembed.prompts import load_task_prompts, row_fields, task_messages, template_name

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--params", required=True)
parser.add_argument("--docs", required=True)
parser.add_argument("--configs", required=True)
parser.add_argument("--prompt", required=True)
parser.add_argument("--n", type=int, default=64)
parser.add_argument("--repeats", type=int, default=2)
args = parser.parse_args()
params = load_params(args.params)

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
generator = TransformersGenerator(params["llm"], params["runtime"]["cache_dir"], params["runtime"]["device"])
batch = generator.batch_size
# The wrapper batches prompts by length; the direct path gets the very same batches.
order = sorted(range(len(requests)), key=lambda i: len(json.dumps(requests[i])))


def direct() -> int:
    tokenizer, model, sampling = generator.tokenizer, generator.model, generator.sampling
    produced = 0
    for start in range(0, len(order), batch):
        chunk = [requests[i] for i in order[start : start + batch]]
        encoded = tokenizer.apply_chat_template(
            chunk, add_generation_prompt=True, return_tensors="pt", padding=True, return_dict=True
        ).to(generator.device)
        torch.manual_seed(params["seed"] + start)
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                max_new_tokens=sampling["max_new_tokens"],
                do_sample=False,
                repetition_penalty=sampling["repetition_penalty"],
                stop_strings=sampling["stop"] or None,
                tokenizer=tokenizer,
                pad_token_id=tokenizer.pad_token_id,
            )
        produced += len(
            tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        )
    return produced


def wrapped() -> int:
    with tempfile.TemporaryDirectory() as folder:
        llm = CachedLLM(generator, LLMCache(Path(folder) / "llm.sqlite"))
        answers = llm.generate(requests, seed=params["seed"], desc="wrapped")
        llm.cache.close()
    return len(answers)


times: dict[str, list[float]] = {"direct": [], "wrapped": []}
for repeat in range(args.repeats):
    for name in ("direct", "wrapped") if repeat % 2 == 0 else ("wrapped", "direct"):
        started = time.perf_counter()
        assert (direct if name == "direct" else wrapped)() == len(requests)
        times[name].append(time.perf_counter() - started)
        print(f"repeat {repeat + 1} {name}: {times[name][-1]:.1f} s", flush=True)
direct_s, wrapped_s = statistics.median(times["direct"]), statistics.median(times["wrapped"])
print(
    json.dumps(
        {
            "prompts": len(requests),
            "batch_size": batch,
            "direct_calls_per_s": round(len(requests) / direct_s, 3),
            "wrapped_calls_per_s": round(len(requests) / wrapped_s, 3),
            "overhead_percent": round(100 * (wrapped_s / direct_s - 1), 1),
        }
    )
)
