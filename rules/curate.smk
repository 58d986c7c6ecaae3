rule filtered:
    input:
        queries="results/queries.parquet",
        docs="results/docs.parquet",
    output:
        filtered="results/filtered.parquet",
        rejected="results/rejected.parquet",
        scores=report("results/plots/filter_scores.csv", category="Curation"),
        stats="results/stats/filtered.json",
    log:
        "logs/filtered.log",
    conda:
        "../envs/synthembed.yaml"
    threads: workflow.cores  # torch uses them; Snakemake otherwise pins a job to one thread
    params:
        **groups("embedder", "filter"),
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
    log:
        "logs/balanced.log",
    conda:
        "../envs/synthembed.yaml"
    params:
        **groups("seed", "balance"),
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
    log:
        "logs/negatives.log",
    conda:
        "../envs/synthembed.yaml"
    threads: workflow.cores  # torch uses them; Snakemake otherwise pins a job to one thread
    params:
        **groups("embedder", "negatives"),
    shell:
        "python scripts/negatives.py --params params.yaml --balanced {input.balanced} --docs {input.docs}"
        " --out {output.negatives} --out-stats {output.stats} --log {log}"
