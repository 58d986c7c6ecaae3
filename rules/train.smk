# Stage statistics describe a run (LLM calls and cache hits differ between two runs over the same data),
# so their dates and checksums never make metrics stale: the data files do. The model is a folder,
# which has no checksum: stats/model.json (deterministic) stands in for a new training run.
RUN_STATS = [
    ancient(f"results/stats/{stage}.json")
    for stage in (
        "docs",
        "configs",
        "queries",
        "structural",
        "doc2query",
        "filtered",
        "balanced",
        "negatives",
    )
]


rule model:
    input:
        code=code("scripts/train.py"),
        negatives="results/negatives.parquet",
        balanced="results/balanced.parquet",
    output:
        model=directory("results/model"),
        curve=report("results/plots/training_loss.csv", category="Training"),
        eval_curve=report("results/plots/eval_loss.csv", category="Training"),
        stats="results/stats/model.json",
    log:
        "logs/model.log",
    conda:
        "../envs/synthembed.yaml"
    threads: workflow.cores  # torch uses them; Snakemake otherwise pins a job to one thread
    params:
        **groups("seed", "embedder", "train"),
    shell:
        "python scripts/train.py --params params.yaml --negatives {input.negatives} --balanced {input.balanced}"
        " --out {output.model} --out-curve {output.curve} --out-eval-curve {output.eval_curve}"
        " --out-stats {output.stats} --log {log}"


rule metrics:
    input:
        code=code("scripts/evaluate.py"),
        model=ancient("results/model"),
        docs="results/docs.parquet",
        eval="results/eval.parquet",
        balanced="results/balanced.parquet",
        stats=RUN_STATS + ["results/stats/model.json"],
    output:
        metrics=report("results/metrics.json", category="Evaluation"),
        plot=report("results/plots/ndcg.csv", category="Evaluation"),
    log:
        "logs/metrics.log",
    conda:
        "../envs/synthembed.yaml"
    threads: workflow.cores  # torch uses them; Snakemake otherwise pins a job to one thread
    params:
        **groups("embedder", "evaluate"),
        # The eval sets lie outside the DAG: their checksums make an edited set rerun the stage (read
        # only where metrics is a job, as docs' source).
        eval_sets=lambda wildcards: eval_sets_fingerprint(config["evaluate"]),
    shell:
        "python scripts/evaluate.py --params params.yaml --model {input.model} --docs {input.docs}"
        " --eval {input.eval} --balanced {input.balanced} --stats {input.stats} --out {output.metrics}"
        " --out-plot {output.plot} --log {log}"
