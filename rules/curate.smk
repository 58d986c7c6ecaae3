rule filtered_shard:
    input:
        code=code("scripts/filter_shard.py"),
        queries="results/queries.parquet",
        docs="results/docs.parquet",
        few_shot=project_file("prompts/queries_few_shot.yaml"),
        report=project_file("prompts/queries_report.yaml"),
    output:
        checks="results/shards/filtered/{shard}.parquet",
        vectors="results/shards/filtered/{shard}.npz",
    log:
        "logs/filtered_shard_{shard}.log",
    conda:
        "../envs/synthembed.yaml"
    threads: workflow.cores  # torch uses them; Snakemake otherwise pins a job to one thread
    params:
        **groups("shards", "embedder"),
        **keys("queries", "prompt_style"),
        # Only what a shard uses: a cosine or duplicate threshold sweep reruns the gather, not the
        # embeddings (round_trip_top_k decides whether a shard embeds the whole corpus).
        **keys(
            "filter",
            "min_words",
            "max_words",
            "language_check",
            "language_min_probability",
            "repetition_check",
            "echo_min_words",
            "copied_min_words",
            "round_trip_top_k",
        ),
    shell:
        "python scripts/filter_shard.py --params params.yaml --queries {input.queries} --docs {input.docs}"
        " --few-shot-prompt {input.few_shot} --report-prompt {input.report} --shard {wildcards.shard}"
        " --out {output.checks} --out-vectors {output.vectors} --log {log}"


rule filtered:
    input:
        code=code("scripts/filter.py"),
        queries="results/queries.parquet",
        docs="results/docs.parquet",
        shards=expand(
            "results/shards/filtered/{shard}.{ext}",
            shard=config["shards"],
            ext=["parquet", "npz"],
        ),
    output:
        filtered="results/filtered.parquet",
        rejected="results/rejected.parquet",
        scores="results/plots/filter_scores.csv",
        plot=report("results/plots/filter_scores.png", category="Curation"),
        stats="results/stats/filtered.json",
    log:
        "logs/filtered.log",
    conda:
        "../envs/synthembed.yaml"
    threads: workflow.cores  # the round trip searches the corpus with torch
    params:
        **groups("seed", "shards", "search", "filter"),
        shards_dir=shards_dir,
    shell:
        "python scripts/filter.py --params params.yaml --queries {input.queries} --docs {input.docs}"
        " --shards-dir {params.shards_dir} --out {output.filtered} --out-rejected {output.rejected}"
        " --out-scores {output.scores} --out-plot {output.plot} --out-stats {output.stats} --log {log}"


rule balanced:
    input:
        code=code("scripts/balance.py"),
        filtered="results/filtered.parquet",
        structural="results/structural.parquet",
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
        "python scripts/balance.py --params params.yaml --filtered {input.filtered}"
        " --structural {input.structural} --out {output.balanced} --out-stats {output.stats} --log {log}"


rule negatives:
    input:
        code=code("scripts/negatives.py"),
        balanced="results/balanced.parquet",
        docs="results/docs.parquet",
    output:
        negatives="results/negatives.parquet",
        margins=report("results/plots/negative_margins.png", category="Curation"),
        ranks=report("results/plots/positive_rank.png", category="Curation"),
        stats="results/stats/negatives.json",
    log:
        "logs/negatives.log",
    conda:
        "../envs/synthembed.yaml"
    threads: workflow.cores  # torch uses them; Snakemake otherwise pins a job to one thread
    params:
        **groups("seed", "embedder", "search", "negatives"),
    shell:
        "python scripts/negatives.py --params params.yaml --balanced {input.balanced} --docs {input.docs}"
        " --out {output.negatives} --out-margins-plot {output.margins} --out-rank-plot {output.ranks}"
        " --out-stats {output.stats} --log {log}"
