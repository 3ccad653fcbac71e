"""Paper experiments: every config composes, a tiny version of each runs end to end, regenerated tables have the
paper's layout with the published column and differences; the leaderboard; method=external; the weight
prefetch; a submitit multirun of 2 methods x 2 shards merges into the unsharded table."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from t2ibench import T2IBenchError
from t2ibench.cli import conf_options
from t2ibench.paper import compare, comparison_table, load_published, repository_published_dir, write_leaderboard

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
EXPERIMENTS = [e for e in conf_options("experiment") if e != "smoke"]
PUBLISHED = repository_published_dir()


def t2ibench(*args, cwd, env=None, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "t2ibench.cli", *args],
        cwd=cwd,
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_there_is_an_experiment_per_published_table():
    assert {p.stem for p in PUBLISHED.glob("*.csv")} <= set(EXPERIMENTS)
    assert len(EXPERIMENTS) >= 8
    for path in PUBLISHED.glob("*.csv"):
        rows = load_published(path)
        assert rows and all(r["paper"] and r["table"] and r["metric"] for r in rows)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(experiment, tmp_path):
    result = t2ibench(f"experiment={experiment}", "--cfg", "job", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"experiment_name: {experiment}" in result.stdout


def _sweep(experiment: str) -> list[dict[str, str]]:
    from omegaconf import OmegaConf

    from t2ibench.config_compose import compose_config

    cfg = compose_config([f"experiment={experiment}"], with_hydra=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params) or {}
    keys = list(params)
    values = [str(params[k]).split(",") for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_tiny_version_of_each_experiment_runs_end_to_end(experiment, tmp_path):
    """From a bare folder: no data dir, an empty cache, no Q16 file, nothing from ../shared (the conftest drops every
    T2IBENCH_* variable): the embedded samples and stand-ins carry the whole sweep."""
    result = t2ibench(
        "-m",
        f"experiment={experiment}",
        "+tiny=all",
        "run.progress=false",
        cwd=tmp_path,
        env={"T2IBENCH_CACHE": str(tmp_path / "empty-cache")},
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert not (tmp_path / "results" / experiment).exists()  # stand-in cells never land beside real ones
    folder = tmp_path / "results" / "stand-ins" / experiment
    table = pd.read_csv(folder / "table.csv")
    assert len(table) == len(_sweep(experiment))  # one row per cell of the sweep
    assert set(table["images"]) == {2} and table["stand_in"].all()
    runs = tmp_path / "outputs" / "runs"
    assert all(p.relative_to(runs).parts[0] == "stand-ins" for p in runs.rglob("samples.jsonl"))
    md = (folder / "table.md").read_text()
    assert "Tiny stand-in cells" in md and "(tiny stand-in)" in md
    named = re.sub(r"standing in for \S+", "", md)  # a real model's id appears only as what the tiny one stands in for
    assert not re.search(r"stabilityai|CompVis|runwayml|fal/|black-forest", named), named
    if (PUBLISHED / f"{experiment}.csv").is_file():
        comparison = pd.read_csv(folder / "comparison.csv", keep_default_na=False)
        assert len(comparison) == len(load_published(PUBLISHED / f"{experiment}.csv"))
        assert "ours" not in comparison.columns and "diff" not in comparison.columns  # a pipeline check only
        assert (comparison["produced"] == True).sum() > 0  # noqa: E712 - the paper's rows we implement were produced
        assert set(comparison.loc[comparison["produced"] == False, "status"]) <= {  # noqa: E712
            "missing (method not in t2ibench)",
            "missing (cell not run)",
            "missing (metric not computed)",
        }
        text = (folder / "comparison.md").read_text()
        assert "Pipeline check" in text and " Δ" not in text and "ours" not in text
        assert "\\begin{tabular}" in (folder / "comparison.tex").read_text()
    assert not (tmp_path / "results" / "leaderboard.md").exists()  # stand-ins are never ranked


def test_role_collapse_pipeline_check_has_the_papers_layout(tmp_path):
    result = t2ibench(
        "experiment=rebind_role_collapse", "+tiny=all", "run.progress=false", cwd=tmp_path
    )  # one cell: SDXL (tiny stand-in)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "results" / "stand-ins" / "rebind_role_collapse"
    text = (folder / "comparison.md").read_text()
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["Spatial", "Orientation", "Pose", "Facial Expression", "VQAScore"]  # the paper's groups
    spatial = text.split("## Spatial")[1].split("## ")[0].splitlines()
    header = [c.strip() for c in next(line for line in spatial if line.startswith("| group")).strip("|").split("|")]
    assert header == ["group", "row", "M paper", "M check", "U paper", "U check", "β paper", "β check"]
    rows = [line for line in spatial if line.startswith("| Frequent") or line.startswith("| Rare")]
    assert [r.split("|")[2].strip() for r in rows] == ["SDXL", "SD3", "SD3.5", "AuraFlow2", "DALL-E 3"] * 2
    sdxl_rare = [c.strip() for c in next(r for r in rows if r.startswith("| Rare | SDXL")).strip("|").split("|")]
    assert sdxl_rare[2:] == ["68.20", "✓ produced", "80.30", "✓ produced", "12.10", "✓ produced"]
    assert "missing (cell not run)" in next(r for r in rows if r.startswith("| Rare | SD3 "))
    table = (folder / "table.md").read_text()  # split as the paper splits: frequent / rare, categories as rows
    assert "## frequent" in table and "## rare" in table
    width = max(len(line.split("|")) for line in table.split("## Provenance")[0].splitlines())
    assert width <= 12, width


def test_real_and_stand_in_cells_of_one_experiment_never_share_a_table(tmp_path, tiny_pipe):
    """A save_pretrained folder of random weights is a real model to the harness: its cell goes to results/<exp>/
    and the leaderboard; the tiny model's cell of the same experiment goes to results/stand-ins/<exp>/."""
    from t2ibench.tiny_models import build_tiny_clip

    weights, clip = tmp_path / "weights", tmp_path / "clip"
    tiny_pipe.save_pretrained(weights, safe_serialization=True)
    model, processor = build_tiny_clip(0)
    model.save_pretrained(clip, safe_serialization=True)
    processor.save_pretrained(clip)
    common = ["experiment_name=mixed", "benchmark.n=2", "generation.num_inference_steps=2", "run.progress=false"]
    stand_in = t2ibench(*common, cwd=tmp_path)
    real = t2ibench(
        *common,
        "model=local",
        f"model.path={weights}",
        "model.name=mymodel",
        f"evaluator.clip_score.backbone={clip}",
        "model.device=cpu",
        cwd=tmp_path,
    )
    assert stand_in.returncode == 0 and real.returncode == 0, (stand_in.stderr + real.stderr)[-3000:]
    real_table = pd.read_csv(tmp_path / "results" / "mixed" / "table.csv")
    tiny_table = pd.read_csv(tmp_path / "results" / "stand-ins" / "mixed" / "table.csv")
    assert real_table["model"].tolist() == ["mymodel"] and not real_table["stand_in"].any()
    assert tiny_table["model"].tolist() == ["tiny"] and tiny_table["stand_in"].all()
    assert "stand-in" not in (tmp_path / "results" / "mixed" / "table.md").read_text()
    assert "tiny (stand-in)" in (tmp_path / "results" / "stand-ins" / "mixed" / "table.md").read_text()
    board = (tmp_path / "results" / "leaderboard.md").read_text()
    assert "mymodel" in board and "| tiny |" not in board
    stores = sorted(str(p.parent.relative_to(tmp_path / "outputs" / "runs")) for p in tmp_path.rglob("samples.jsonl"))
    assert stores[0].startswith("mymodel/sd/tiny/") and stores[1].startswith("stand-ins/tiny/sd/tiny/")


def test_a_failing_cell_does_not_stop_the_sweep(tmp_path):
    """Decorrelation needs a target word: on RoleBench alone it fails; the sd cell still runs, the failure is listed
    at the end and the exit status says so."""
    result = t2ibench(
        "-m",
        "method=decorrelation,sd",
        "benchmark=rolebench",
        "benchmark.n=1",
        "generation.num_inference_steps=1",
        "experiment_name=partly",
        "run.progress=false",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("t2ibench: error:")]
    assert len(errors) == 2 and "cell #0" in errors[0] and "needs a target word" in errors[0]
    assert errors[1].startswith("t2ibench: error: 1 cell(s) of the sweep failed; the others ran. First: #0")
    assert "Traceback" not in result.stderr
    table = pd.read_csv(tmp_path / "results" / "stand-ins" / "partly" / "table.csv")
    assert table["method"].tolist() == ["sd"]


def _published(**over):
    base = {
        "paper": "P",
        "table": "T",
        "group": "",
        "row": "A",
        "column": "C",
        "value": "10.0",
        "scale": "100",
        "model": "m",
        "method": "sd",
        "benchmark": "b",
        "metric": "x",
        "base_model": "",
        "base_method": "",
    }
    return {**base, **over}


def test_comparison_by_hand():
    table = pd.DataFrame(
        [
            {"model": "m", "method": "sd", "benchmark": "b", "x": 0.25, "y": 0.5},
            {"model": "m", "method": "rebind", "benchmark": "b", "x": 0.1, "y": float("nan")},
        ]
    )
    published = [
        _published(row="SD", value="20.0"),
        _published(row="ReBind", method="rebind", value="12.5"),
        _published(
            row="ReBind",
            method="rebind",
            column="gain",
            metric="gain:x",
            base_model="m",
            base_method="sd",
            value="10.0",
        ),
        _published(row="ReBind", method="rebind", column="D", metric="y", value="1.00"),
        _published(row="IterComp", method="itercomp", value="9.0"),
        _published(row="SD", column="E", metric="x", benchmark="other", value="3.0"),
    ]
    records = compare(published, table, {"sd", "rebind"})
    assert [r["ours"] for r in records[:3]] == pytest.approx([25.0, 10.0, 15.0])  # scale x100; gain = base - row
    assert records[0]["diff"] == pytest.approx(5.0) and records[1]["diff"] == pytest.approx(-2.5)
    assert [r["status"] for r in records[3:]] == [
        "missing (metric not computed)",
        "missing (method not in t2ibench)",
        "missing (cell not run)",
    ]
    header, body = comparison_table(records)
    assert header == [
        "row",
        "C ours",
        "C paper",
        "C Δ",
        "gain ours",
        "gain paper",
        "gain Δ",
        "D ours",
        "D paper",
        "D Δ",
        "E ours",
        "E paper",
        "E Δ",
    ]
    assert body[0][:4] == ["SD", "25.0", "20.0", "+5.0"] and body[1][4:7] == ["15.0", "10.0", "+5.0"]
    assert body[2][1] == "missing (method not in t2ibench)"


def test_malformed_published_csv_names_file_and_line(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("# note\npaper,table\nP,T\n")
    with pytest.raises(T2IBenchError, match=r"x.csv:2: missing column\(s\) group"):
        load_published(path)
    header = ",".join(_published())
    path.write_text(f"{header}\n" + ",".join(_published(value="ten").values()) + "\n")
    with pytest.raises(T2IBenchError, match=r"x.csv:2: value 'ten'"):
        load_published(path)


def test_leaderboard_ranks_per_metric_and_direction(tmp_path):
    for experiment, rows in {
        "e1": [("sd", 0.3, 20.0), ("rebind", 0.1, 25.0)],
        "e2": [("syngen", 0.2, 30.0)],
    }.items():
        (tmp_path / experiment).mkdir()
        pd.DataFrame(
            [
                {"model": "m", "method": method, "benchmark": "b", "images": 2, "fid": fid, "clip_score": clip}
                for method, fid, clip in rows
            ]
        ).to_csv(tmp_path / experiment / "table.csv", index=False)
    text = write_leaderboard(tmp_path).read_text()
    fid = text.split("## b: fid (lower is better)")[1].split("##")[0]
    clip = text.split("## b: clip_score (higher is better)")[1].split("##")[0]
    assert [
        line.split("|")[2].strip()
        for line in fid.splitlines()
        if line.startswith("| 1") or line.startswith("| 2") or line.startswith("| 3")
    ] == ["rebind", "syngen", "sd"]
    assert clip.index("syngen") < clip.index("rebind") < clip.index("| sd ")


def test_leaderboard_ranks_beta_as_the_paper_does_and_skips_unranked_metrics(tmp_path):
    (tmp_path / "e").mkdir()
    pd.DataFrame(
        [
            {
                "model": "m",
                "method": method,
                "benchmark": "rolebench",
                "images": 2,
                "rare.spatial.beta": beta,
                "exp_max_std": 0.1,
                "stand_in": False,
            }
            for method, beta in (("sd", 0.121), ("rebind", 0.070), ("ideal", -0.300))
        ]
        + [
            {
                "model": "tiny",
                "method": "x",
                "benchmark": "rolebench",
                "images": 2,
                "rare.spatial.beta": -9.0,
                "exp_max_std": 0.1,
                "stand_in": True,
            }
        ]
    ).to_csv(tmp_path / "e" / "table.csv", index=False)
    text = write_leaderboard(tmp_path).read_text()
    section = text.split("## rolebench: rare.spatial.beta (lower is better; the paper's beta with a down arrow")[1]
    ranked = [line.split("|")[2].strip() for line in section.split("\n## ")[0].splitlines() if line.startswith("| ")]
    assert ranked[1:] == ["ideal", "rebind", "sd"]  # signed beta ascending (header row first); |beta| would differ
    assert "exp_max_std" not in text and "| x |" not in text  # a std is not ranked; a stand-in row never is


def test_external_images_enter_the_same_tables(tmp_path, tiny_cfg):
    from t2ibench.run_store import RunStore
    from t2ibench.runner import run_cell

    made = run_cell(tiny_cfg(tmp_path / "made"))
    source = RunStore(made["store"])
    folder = tmp_path / "dalle3"
    for record in source.samples():
        target = folder / record["prompt"]["id"] / f"{record['seed']}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(source.path / record["image"]).save(target, quality=100, subsampling=0)  # another format
    cfg = tiny_cfg(tmp_path / "ext")
    cfg["model"] = {
        "name": "dalle3",
        "source": "external",
        "id": "openai/dall-e-3",
        "generation_defaults": cfg["model"]["generation_defaults"],
    }
    cfg["method"] = {"name": "external", "image_dir": str(folder)}
    summary = run_cell(cfg)
    assert summary["generated"] == 2 and summary["table"]["model"].tolist() == ["dalle3"]
    assert summary["table"]["method"].tolist() == ["external"]
    store = RunStore(summary["store"])
    assert all(r["pipeline"] == "external" for r in store.records().values())
    assert run_cell(cfg)["generated"] == 0  # cached like any cell
    (folder / "rolebench-chasing-rare").rename(folder / "gone")
    cfg["run"]["seeds"] = [0, 1]
    with pytest.raises(T2IBenchError, match=r"method=external: \d+ of 4 images are missing, e\.g\. .*\.png"):
        run_cell(cfg)
    cfg["method"]["allow_missing"] = True
    assert run_cell(cfg)["images"] < 4


def test_fetch_lists_checks_and_verifies(tmp_path, monkeypatch):
    from t2ibench import fetch

    weights, notes = fetch.needed_weights(["experiment=respodiff_gender"])
    assert weights == [("CompVis/stable-diffusion-v1-4", "main"), ("openai/clip-vit-base-patch32", "main")]
    assert any("coco30k" in n for n in notes)
    weights, _ = fetch.needed_weights(["experiment=decorrelation_table3"])
    assert ("Qwen/Qwen2-VL-7B-Instruct", "main") in weights and ("microsoft/deberta-xlarge-mnli", "main") in weights
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = subprocess.run(
        [sys.executable, "-m", "t2ibench.fetch", "experiment=respodiff_race", "--check"],
        env={**ENV, "HF_HOME": str(tmp_path / "hf")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        result.returncode == 1
        and "missing  CompVis/stable-diffusion-v1-4@main: not in the local cache" in result.stdout
    )
    assert "2 of 2 weights unavailable" in result.stderr

    folder = tmp_path / "snap"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")

    class Info:
        siblings = [type("S", (), {"rfilename": "model.safetensors", "lfs": {"sha256": "0" * 64}})()]

    monkeypatch.setattr("huggingface_hub.HfApi.model_info", lambda self, *a, **k: Info())
    with pytest.raises(T2IBenchError, match="model.safetensors does not match the hub's sha256"):
        fetch.verify("org/model", "main", folder)
    import hashlib

    Info.siblings[0].lfs = {"sha256": hashlib.sha256(b"weights").hexdigest()}
    assert fetch.verify("org/model", "main", folder) == 1


def test_submitit_multirun_of_two_methods_and_two_shards_merges_to_the_unsharded_table(tmp_path):
    common = ["benchmark.n=4", "generation.num_inference_steps=2", "run.batch_size=1", "run.progress=false"]
    sharded = t2ibench(
        "-m",
        "hydra/launcher=submitit_local",
        "method=sd,attend_and_excite",
        "benchmark.shard=0/2,1/2",
        *common,
        "experiment_name=sharded",
        cwd=tmp_path,
    )
    assert sharded.returncode == 0, (sharded.stdout + sharded.stderr)[-3000:]
    assert len(list((tmp_path / "results" / "stand-ins" / "sharded" / "cells").glob("*.json"))) == 4
    whole = t2ibench("-m", "method=sd,attend_and_excite", *common, "experiment_name=whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    columns = ["model", "method", "benchmark", "images", "clip_score", "clip_score_ci_low", "clip_score_ci_high"]
    a = pd.read_csv(tmp_path / "results" / "stand-ins" / "sharded" / "table.csv")[columns]
    b = pd.read_csv(tmp_path / "results" / "stand-ins" / "whole" / "table.csv")[columns]
    assert a[columns[:4]].values.tolist() == b[columns[:4]].values.tolist()  # the same images (batch size 1) ...
    for column in columns[4:]:  # ... scored in other CLIP batches: equal to float32 noise
        assert a[column].tolist() == pytest.approx(b[column].tolist(), abs=1e-4)
    assert not (tmp_path / "results" / "leaderboard.md").exists()  # stand-in cells are never ranked
