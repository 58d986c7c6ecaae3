"""Serving the generator with vLLM: the server's command line and the llm params that point the
pipeline at it (edited in place in params.yaml, comments kept)."""

from __future__ import annotations

import re
from typing import Any


def vllm_command(
    model: str,
    served_name: str,
    host: str,
    port: int,
    tensor_parallel_size: int,
    max_model_len: int,
    gpu_memory_utilization: float,
) -> list[str]:
    """``vllm serve`` for an OpenAI-compatible server whose JSON answers follow the request's schema
    (``response_format: json_schema`` is decoded under the schema's grammar).

    >>> vllm_command("Qwen/Qwen3-32B", "qwen3-32b", "0.0.0.0", 8000, 4, 8192, 0.9)[:6]
    ['vllm', 'serve', 'Qwen/Qwen3-32B', '--served-model-name', 'qwen3-32b', '--host']
    """
    return [
        "vllm",
        "serve",
        model,
        "--served-model-name",
        served_name,
        "--host",
        host,
        "--port",
        str(port),
        "--tensor-parallel-size",
        str(tensor_parallel_size),
        "--max-model-len",
        str(max_model_len),
        "--gpu-memory-utilization",
        str(gpu_memory_utilization),
        "--generation-config",
        "vllm",  # sampling comes from each request (params), not from the model's defaults
    ]


def served_llm_params(served_name: str, base_url: str, qwen3: bool) -> dict[str, Any]:
    """The llm params of a run against the server: the openai backend and guided JSON answers, with room
    for them (no stop at the first newline, 256 new tokens: a code_negative answer's function is cut at
    32 and no longer parses), and for Qwen3 the sampling its model card recommends in non-thinking mode
    (temperature 0.7, top_p 0.8, top_k 20) with thinking off. Other models keep the params' temperature.

    >>> served_llm_params("m", "http://h:8000/v1", qwen3=False)["extra_body"]
    {}
    >>> qwen3 = served_llm_params("q", "http://h:8000/v1", qwen3=True)
    >>> qwen3["temperature"], qwen3["top_p"], qwen3["extra_body"]
    (0.7, 0.8, {'top_k': 20, 'chat_template_kwargs': {'enable_thinking': False}})
    """
    sampling = {"temperature": 0.7, "top_p": 0.8} if qwen3 else {"top_p": 1.0}
    extra = {"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}} if qwen3 else {}
    return {
        "backend": "openai",
        "model": served_name,
        "base_url": base_url,
        "response_format": "json_schema",
        "max_new_tokens": 256,
        "stop": [],
        **sampling,
        "extra_body": extra,
    }


def set_group_values(text: str, group: str, values: dict[str, Any]) -> str:
    """``text`` (a params.yaml) with ``values`` written into the top-level ``group``, each on its own
    line as YAML flow values; comments and every other line stay as they were.

    >>> text = "llm:\\n  backend: transformers  # local\\n  model: small\\ndocs:\\n  model: keep\\n"
    >>> print(set_group_values(text, "llm", {"backend": "openai", "extra_body": {"top_k": 20}}), end="")
    llm:
      backend: "openai"  # local
      model: small
      extra_body: {"top_k": 20}
    docs:
      model: keep
    """
    import json

    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.rstrip() == f"{group}:")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"\S", lines[i])), len(lines))
    for key, value in values.items():
        rendered = json.dumps(value)
        pattern = re.compile(rf"^(  {re.escape(key)}:)[^#\n]*?(\s*#.*)?$")
        for i in range(start + 1, end):
            match = pattern.match(lines[i].rstrip("\n"))
            if match:
                lines[i] = f"{match.group(1)} {rendered}{match.group(2) or ''}\n"
                break
        else:
            lines.insert(end, f"  {key}: {rendered}\n")
            end += 1
    return "".join(lines)
