"""doc2query: fine-tune the generator on the corpus's structural pairs (query <- document), the model
the queries stage asks for retrieval rows when queries.generator is doc2query."""

import polars as pl
from tqdm import tqdm

from synthembed.cli import stage_parser, start_stage
from synthembed.doc2query import fine_tune, load_doc2query_prompt, training_examples
from synthembed.io import atomic_path, write_csv, write_json
from synthembed.models import causal_lm_path, load_causal_lm, resolve_device

parser = stage_parser(__doc__)
parser.add_argument("--structural", required=True)
parser.add_argument("--prompt", required=True, help="prompts/doc2query.yaml")
parser.add_argument("--out", required=True, help="folder of the fine-tuned model")
parser.add_argument("--out-curve", required=True)
parser.add_argument("--out-stats", required=True)
args, params = start_stage(parser)
cfg = params["doc2query"]

curve, pairs, too_long = [], 0, 0
with atomic_path(args.out, directory=True) as folder:
    if cfg["max_steps"]:  # 0 = off: an empty folder, which the queries stage is never asked to use
        path = causal_lm_path(cfg["model"], params["runtime"]["cache_dir"])
        tokenizer, model = load_causal_lm(
            path, resolve_device(params["runtime"]["device"]), for_training=True
        )
        examples = training_examples(
            pl.read_parquet(args.structural), load_doc2query_prompt(args.prompt), cfg, params["seed"]
        )
        pairs = len(examples)
        with tqdm(total=cfg["max_steps"], desc="doc2query", unit="step") as progress:

            def on_step(step: int, loss: float) -> None:
                progress.set_postfix(loss=f"{loss:.3f}")
                progress.update(1)

            curve, too_long = fine_tune(model, tokenizer, examples, cfg, params["seed"], on_step)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
write_csv(pl.DataFrame(curve, schema={"step": pl.Int64, "loss": pl.Float64}), args.out_curve)
losses = [point["loss"] for point in curve]
tail = max(1, len(losses) // 10)
write_json(
    {
        "model": cfg["model"],
        "pairs": pairs,
        "too_long": too_long,
        "steps": len(curve),
        "first_loss": round(sum(losses[:tail]) / tail, 4) if losses else None,
        "last_loss": round(sum(losses[-tail:]) / tail, 4) if losses else None,
    },
    args.out_stats,
)
