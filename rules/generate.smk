rule docs:
    input:
        code=code("scripts/docs.py"),
    output:
        docs="results/docs.parquet",
        eval="results/eval.parquet",
        rejected="results/docs_rejected.parquet",
        stats="results/stats/docs.json",
    log:
        "logs/docs.log",
    conda:
        "../envs/synthembed.yaml"
    params:
        **groups("seed", "docs"),
        # The corpus lies outside the DAG: its checksums make an edited source rerun the stage. A function,
        # so they are read only where docs is a job, not at every parse (each cluster job parses).
        source=lambda wildcards: source_fingerprint(config["docs"]),
    shell:
        "python scripts/docs.py --params params.yaml --out-docs {output.docs} --out-eval {output.eval}"
        " --out-rejected {output.rejected} --out-stats {output.stats} --log {log}"


rule configs_shard:
    input:
        code=code("scripts/configs.py"),
        docs="results/docs.parquet",
        personas=project_file("prompts/personas.yaml"),
        glossary=project_file("prompts/glossary.yaml"),
        prompt=project_file("prompts/configs_llm.yaml"),
    output:
        configs="results/shards/configs/{shard}.parquet",
        stats="results/shards/configs/{shard}.json",
    log:
        "logs/configs_shard_{shard}.log",
    conda:
        "../envs/synthembed.yaml"
    threads: workflow.cores  # torch uses them; Snakemake otherwise pins a job to one thread
    params:
        # llm: the whole group reaches the generator, but only under configs.policy: llm.
        **groups("seed", "shards", "embedder", "llm", "configs"),
    shell:
        "python scripts/configs.py --params params.yaml --docs {input.docs} --personas {input.personas}"
        " --glossary {input.glossary} --prompt {input.prompt} --shard {wildcards.shard}"
        " --out {output.configs} --out-stats {output.stats} --log {log}"


rule configs:
    input:
        code=code("scripts/gather_configs.py"),
        shards=expand(
            "results/shards/configs/{shard}.{ext}",
            shard=config["shards"],
            ext=["parquet", "json"],
        ),
    output:
        configs="results/configs.parquet",
        stats="results/stats/configs.json",
    log:
        "logs/configs.log",
    conda:
        "../envs/synthembed.yaml"
    params:
        **groups("shards", "configs"),
        shards_dir=shards_dir,
    shell:
        "python scripts/gather_configs.py --params params.yaml --shards-dir {params.shards_dir}"
        " --out {output.configs} --out-stats {output.stats} --log {log}"


rule structural:
    input:
        code=code("scripts/structural.py"),
        docs="results/docs.parquet",
    output:
        structural="results/structural.parquet",
        stats="results/stats/structural.json",
    log:
        "logs/structural.log",
    conda:
        "../envs/synthembed.yaml"
    params:
        **groups("seed", "structural"),
    shell:
        "python scripts/structural.py --params params.yaml --docs {input.docs} --out {output.structural}"
        " --out-stats {output.stats} --log {log}"


rule doc2query:
    input:
        code=code("scripts/doc2query.py"),
        structural="results/structural.parquet",
        prompt=project_file("prompts/doc2query.yaml"),
    output:
        model=directory("results/doc2query"),
        curve=report("results/plots/doc2query_loss.csv", category="Generation"),
        stats="results/stats/doc2query.json",
    log:
        "logs/doc2query.log",
    conda:
        "../envs/synthembed.yaml"
    threads: workflow.cores  # torch uses them; Snakemake otherwise pins a job to one thread
    params:
        **groups("seed", "doc2query"),
    shell:
        "python scripts/doc2query.py --params params.yaml --structural {input.structural} --prompt {input.prompt}"
        " --out {output.model} --out-curve {output.curve} --out-stats {output.stats} --log {log}"


rule queries_shard:
    input:
        code=code("scripts/queries.py"),
        docs="results/docs.parquet",
        configs="results/configs.parquet",
        structural="results/structural.parquet",
        doc2query="results/doc2query",
        few_shot=project_file("prompts/queries_few_shot.yaml"),
        report=project_file("prompts/queries_report.yaml"),
        doc2query_prompt=project_file("prompts/doc2query.yaml"),
    output:
        queries="results/shards/queries/{shard}.parquet",
        stats="results/shards/queries/{shard}.json",
    log:
        "logs/queries_shard_{shard}.log",
    conda:
        "../envs/synthembed.yaml"
    threads: workflow.cores  # torch uses them; Snakemake otherwise pins a job to one thread
    params:
        **groups("seed", "shards", "embedder", "llm", "queries", "doc2query"),
    shell:
        "python scripts/queries.py --params params.yaml --docs {input.docs} --configs {input.configs}"
        " --structural {input.structural} --doc2query {input.doc2query} --doc2query-prompt {input.doc2query_prompt}"
        " --few-shot-prompt {input.few_shot} --report-prompt {input.report} --shard {wildcards.shard}"
        " --out {output.queries} --out-stats {output.stats} --log {log}"


rule queries:
    input:
        code=code("scripts/gather_queries.py"),
        configs="results/configs.parquet",
        shards=expand(
            "results/shards/queries/{shard}.{ext}",
            shard=config["shards"],
            ext=["parquet", "json"],
        ),
    output:
        queries="results/queries.parquet",
        stats="results/stats/queries.json",
    log:
        "logs/queries.log",
    conda:
        "../envs/synthembed.yaml"
    params:
        **groups("shards"),
        shards_dir=shards_dir,
    shell:
        "python scripts/gather_queries.py --params params.yaml --configs {input.configs}"
        " --shards-dir {params.shards_dir} --out {output.queries} --out-stats {output.stats} --log {log}"
