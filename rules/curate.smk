rule filtered:
    input:
        queries="results/queries.parquet",
        docs="results/docs.parquet",
    output:
        filtered="results/filtered.parquet",
        rejected="results/rejected.parquet",
        scores=report("results/plots/filter_scores.csv", category="Curation"),
        stats="results/stats/filtered.json",
    params:
        **groups("embedder", "filter"),
    log:
        "logs/filtered.log",
    shell:
        "python scripts/filter.py --params params.yaml --queries {input.queries} --docs {input.docs}"
        " --out {output.filtered} --out-rejected {output.rejected} --out-scores {output.scores}"
        " --out-stats {output.stats} --log {log}"


rule balanced:
    input:
        filtered="results/filtered.parquet",
    output:
        balanced="results/balanced.parquet",
        stats="results/stats/balanced.json",
    params:
        **groups("seed", "balance"),
    log:
        "logs/balanced.log",
    shell:
        "python scripts/balance.py --params params.yaml --filtered {input.filtered} --out {output.balanced}"
        " --out-stats {output.stats} --log {log}"


rule negatives:
    input:
        balanced="results/balanced.parquet",
        docs="results/docs.parquet",
    output:
        negatives="results/negatives.parquet",
        stats="results/stats/negatives.json",
    params:
        **groups("embedder", "negatives"),
    log:
        "logs/negatives.log",
    shell:
        "python scripts/negatives.py --params params.yaml --balanced {input.balanced} --docs {input.docs}"
        " --out {output.negatives} --out-stats {output.stats} --log {log}"
