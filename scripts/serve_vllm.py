"""Serve the generator with vLLM's OpenAI-compatible server and point params.yaml at it.

    python scripts/serve_vllm.py --model Qwen/Qwen3-32B --tensor-parallel-size 4 --params params.yaml

writes the llm group (openai backend, the served name, the address, guided JSON answers, Qwen3's
sampling) into params.yaml, comments kept, then runs `vllm serve` in the foreground. Run it on the GPU
machine (or as a cluster job); `--dry-run` prints the command and the params without starting anything.
"""

import argparse
import logging
import os
import shlex
import socket
from pathlib import Path

from synthembed.serving import served_llm_params, set_group_values, vllm_command

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", required=True, help="a Hugging Face id or local folder vLLM can load")
parser.add_argument("--served-name", help="the name requests use (default: the model's last path part)")
parser.add_argument("--params", required=True, help="params.yaml to point at the server")
parser.add_argument("--host", default="0.0.0.0")
parser.add_argument("--port", type=int, default=8000)
parser.add_argument("--address", help="how the pipeline reaches this machine (default: its host name)")
parser.add_argument("--tensor-parallel-size", type=int, default=1)
parser.add_argument("--max-model-len", type=int, default=8192)
parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
parser.add_argument("--dry-run", action="store_true")
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(message)s")

served = args.served_name or args.model.rstrip("/").split("/")[-1].lower()
base_url = f"http://{args.address or socket.getfqdn()}:{args.port}/v1"
llm = served_llm_params(served, base_url, qwen3="qwen3" in args.model.lower())
command = vllm_command(
    args.model,
    served,
    args.host,
    args.port,
    args.tensor_parallel_size,
    args.max_model_len,
    args.gpu_memory_utilization,
)
params = Path(args.params)
edited = set_group_values(params.read_text(), "llm", llm)
logging.info("llm params for %s: %s", params, llm)
logging.info("server: %s", shlex.join(command))
if not args.dry_run:
    params.write_text(edited)
    os.execvp(command[0], command)
