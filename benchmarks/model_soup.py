"""A uniform soup of fine-tuned embedders: the mean of their weights, scored by nDCG@10 on a BEIR
folder beside the base model and each ingredient.

Models fine-tuned from the same weights with different seeds (initialisation, data order, structural sample)
often lie in one basin, where their mean scores at least as well as the best of them (Wortsman et al.,
2022, "Model soups"). The ingredients come from `benchmarks/train_ablation.py --save-models`:

    python benchmarks/train_ablation.py ... --seeds 13 14 --save-models runs/models
    python benchmarks/model_soup.py --params params.yaml --eval-set data/scifact-dev \\
        --models runs/models/full-3-epochs-seed13 runs/models/full-3-epochs-seed14 --out soup.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from pathlib import Path

import torch

from synthembed.corpus import read_beir_set
from synthembed.evaluate import evaluate_model
from synthembed.models import load_embedder, resolve_device, resolve_dtype
from synthembed.params import load_params


def mean_state_dict(state_dicts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors; other tensors (ids, counters) from the first.

    >>> a = {"w": torch.tensor([1.0, 2.0]), "ids": torch.tensor([0, 1])}
    >>> b = {"w": torch.tensor([3.0, 6.0]), "ids": torch.tensor([0, 1])}
    >>> mean_state_dict([a, b])
    {'w': tensor([2., 4.]), 'ids': tensor([0, 1])}
    """
    first = state_dicts[0]
    if any(d.keys() != first.keys() for d in state_dicts):
        raise ValueError("the models' weights differ in their names: not fine-tunes of one model")
    return {
        name: torch.stack([d[name] for d in state_dicts]).mean(0) if tensor.is_floating_point() else tensor
        for name, tensor in first.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", required=True)
    parser.add_argument("--eval-set", required=True, help="a BEIR folder")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--models", nargs="+", required=True, help="SentenceTransformer folders")
    parser.add_argument("--device", help="overrides runtime.device")
    parser.add_argument("--out", help="JSON file for the table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    params = load_params(args.params)
    emb = params["embedder"]
    device = resolve_device(args.device or params["runtime"]["device"])
    beir = read_beir_set(args.eval_set, args.split)
    sets = {beir.name: (beir.queries, beir.relevant)}

    def ndcg(model) -> float:
        scores = evaluate_model(model, beir.corpus, sets, {beir.name: emb["query_prompt"]}, 256)
        return scores[beir.name]["ndcg@10"]

    base = ndcg(load_embedder(emb, device))
    rows = [{"model": "base", "ndcg@10": round(base, 4), "delta": 0.0}]
    ingredients = [load_embedder(emb, device, path=path, for_training=True) for path in args.models]
    soup = copy.deepcopy(ingredients[0])
    soup.load_state_dict(mean_state_dict([m.state_dict() for m in ingredients]))
    encode_dtype = resolve_dtype(emb["encode_dtype"], device)
    for name, model in [*zip(args.models, ingredients, strict=True), ("soup", soup)]:
        score = ndcg(model.to(encode_dtype))
        rows.append({"model": name, "ndcg@10": round(score, 4), "delta": round(100 * (score - base), 2)})
    for row in rows:
        print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
