"""GenAI-Bench: the benchmark (variants, skill tags, ratings), the agreement statistics against scipy and by hand,
GenAI-Bench's per-skill means, and ``t2ibench-agreement`` over released-image cells (method=external)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import scipy.stats
from PIL import Image

from t2ibench import benchmarks
from t2ibench.agreement import (
    SKILLS,
    agreement,
    kendall_tau_b,
    pairwise_accuracy,
    pearson,
    skill_groups,
    skill_means,
)
from t2ibench.benchmarks.genai_bench import RELEASED_MODELS
from t2ibench.errors import T2IBenchError


@pytest.fixture()
def data_dir(tmp_path, shared_dir):
    """A data folder holding the shared 527 file and a tag file made in the official format (skill -> int ids)."""
    folder = tmp_path / "data" / "genai_bench"
    folder.mkdir(parents=True)
    (folder / "genai_image_527.json").symlink_to(shared_dir / "datasets" / "genai_bench" / "genai_image_527.json")
    tags = {"attribute": [1, 2, 3], "basic": [1, 2, 3, 4], "counting": [4, 5], "advanced": [4, 5]}
    (folder / "genai_skills_527.json").write_text(json.dumps(tags))
    return tmp_path / "data"


def test_the_527_prompts_carry_ratings_and_tags(data_dir):
    prompts = benchmarks.load("genai_bench", variant="527", data_dir=str(data_dir))
    assert len(prompts) == 527 and prompts[0].id == "00001" and prompts[-1].id == "00527"
    first = prompts[0].metadata
    assert first["skills"] == ["attribute", "basic"]
    assert prompts[3].metadata["skills"] == ["basic", "counting", "advanced"]  # SKILLS order
    assert prompts[10].metadata["skills"] == []
    assert first["human_alignment"]["DALLE_3"] == [5.0, 5.0, 5.0] and set(first["human_alignment"]) == set(
        RELEASED_MODELS
    )
    assert first["source_sha256"] == "a5974a5e67f530985a12f2d5cda490f3cb1e47064a56c54817d57102a964e9ff"
    assert first["skills_file"] == "genai_bench/genai_skills_527.json" and len(first["skills_sha256"]) == 64
    counting = benchmarks.load("genai_bench", variant="527", data_dir=str(data_dir), skills=["counting"])
    assert [p.id for p in counting] == ["00004", "00005"]


def test_bad_variants_skills_and_tag_files_are_clear_errors(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("T2IBENCH_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(T2IBenchError, match="variant='2000'; valid: 1600, 527"):
        benchmarks.load("genai_bench", variant="2000")
    with pytest.raises(T2IBenchError, match="unknown genai_bench skill.*counts.*valid: attribute"):
        benchmarks.load("genai_bench", variant="527", data_dir=str(data_dir), skills=["counts"])
    tags = data_dir / "genai_bench" / "genai_skills_527.json"
    tags.write_text(json.dumps({"counting": [9999]}))
    with pytest.raises(T2IBenchError, match="names prompt 9999, which the prompt file lacks"):
        benchmarks.load("genai_bench", variant="527", data_dir=str(data_dir))
    tags.write_text(json.dumps({"countin": [1]}))
    with pytest.raises(T2IBenchError, match="genai_skills_527.json: unknown skill"):
        benchmarks.load("genai_bench", variant="527", data_dir=str(data_dir))
    tags.unlink()
    with pytest.raises(T2IBenchError, match="genai_skills_527.json is not available offline.*with_skills=false"):
        benchmarks.load("genai_bench", variant="527", data_dir=str(data_dir))
    untagged = benchmarks.load("genai_bench", variant="527", data_dir=str(data_dir), with_skills=False)
    assert len(untagged) == 527 and untagged[0].metadata["skills"] is None
    with pytest.raises(T2IBenchError, match="genai_image_1600.json is not available offline.*not pinned"):
        benchmarks.load("genai_bench", data_dir=str(data_dir))


def test_an_unpinned_file_is_used_with_its_hash_recorded(tmp_path, caplog):
    """The 1,600 files have no published hash: the file found is used, its actual sha256 recorded, with a warning."""
    folder = tmp_path / "genai_bench"
    folder.mkdir()
    entries = {f"{i:05d}": {"id": f"{i:05d}", "prompt": f"prompt {i}", "prompt in Chinese": ""} for i in (1, 2, 3)}
    (folder / "genai_image_1600.json").write_text(json.dumps(entries))
    (folder / "genai_skills_1600.json").write_text(json.dumps({"negation": [2], "advanced": [2]}))
    prompts = benchmarks.load("genai_bench", data_dir=str(tmp_path))
    assert [p.metadata["skills"] for p in prompts] == [[], ["negation", "advanced"], []]
    assert "human_alignment" not in prompts[0].metadata  # the 1,600 file's unrated prompts carry no ratings
    from t2ibench.hashing import file_sha256

    assert prompts[0].metadata["source_sha256"] == file_sha256(folder / "genai_image_1600.json")
    assert "no sha256 is pinned" in caplog.text


# -- the statistics -------------------------------------------------------------------------------------------
def _naive_pairwise_accuracy(human, metric):
    """Deutsch et al. (2023) by definition: for every candidate epsilon (0 and each pair's metric difference), the
    share of pairs ordered as people order them, ties included; the best, and the smallest epsilon reaching it."""
    pairs = list(itertools.combinations(range(len(human)), 2))
    candidates = sorted({0.0} | {abs(metric[i] - metric[j]) for i, j in pairs})
    best = (-1.0, 0.0)
    for eps in candidates:
        right = 0
        for i, j in pairs:
            dh, dm = human[i] - human[j], metric[i] - metric[j]
            tie = abs(dm) <= eps
            right += (dh == 0 and tie) or (not tie and dh * dm > 0)
        if right / len(pairs) > best[0]:
            best = (right / len(pairs), eps)
    return best


def test_pairwise_accuracy_with_tie_calibration_by_hand():
    # ratings (1, 1, 2), metric (0.5, 0.6, 0.9): ordered pairs (0,2) and (1,2) right at any epsilon < 0.3; the tied
    # pair (0,1) is right once epsilon reaches its difference 0.1: accuracy 3/3 at epsilon 0.1 (0 would give 2/3)
    accuracy, epsilon = pairwise_accuracy([1, 1, 2], [0.5, 0.6, 0.9])
    assert accuracy == 1.0 and epsilon == pytest.approx(0.1)
    # no ties in the ratings: any epsilon > 0 only loses right pairs, so epsilon 0 and plain accuracy (2 of 3 here)
    assert pairwise_accuracy([1, 2, 3], [0.1, 0.3, 0.2]) == (pytest.approx(2 / 3), 0.0)
    # a metric that ties everything is right exactly on the pairs people tie
    assert pairwise_accuracy([1, 1, 2, 2], [0.5] * 4)[0] == pytest.approx(2 / 6)


@pytest.mark.parametrize("seed", range(5))
def test_the_statistics_equal_scipy_and_the_definition(seed):
    rng = np.random.default_rng(seed)
    human = rng.integers(1, 6, 60).astype(float) + rng.integers(0, 3, 60) / 3  # means of three 1-5 ratings
    metric = np.round(human / 5 + rng.normal(0, 0.2, 60), 2)  # rounded: ties in the metric too
    assert kendall_tau_b(human, metric) == pytest.approx(scipy.stats.kendalltau(human, metric).statistic, abs=1e-12)
    assert pearson(human, metric) == pytest.approx(scipy.stats.pearsonr(human, metric).statistic, abs=1e-12)
    accuracy, epsilon = pairwise_accuracy(human, metric)
    naive_accuracy, naive_epsilon = _naive_pairwise_accuracy(list(human), list(metric))
    assert accuracy == pytest.approx(naive_accuracy, abs=1e-12) and epsilon == pytest.approx(naive_epsilon)
    result = agreement(human, metric)
    assert result["n"] == 60 and result["pairwise_accuracy"] == accuracy


def test_skill_means_follow_genai_bench_evaluate():
    """Each tag's mean over its prompts; overall over the prompts with any tag (untagged-but-read prompts are out)."""
    tags = {"a": ["attribute", "basic"], "b": ["counting", "advanced"], "c": ["basic"], "d": []}
    scores = {"a": 0.9, "b": 0.3, "c": 0.6, "d": 0.0}
    means = skill_means(scores, tags)
    assert set(means) == {"attribute", "basic", "counting", "advanced", "overall"}
    assert means["basic"]["mean"] == pytest.approx(0.75) and means["advanced"]["mean"] == pytest.approx(0.3)
    assert means["overall"]["mean"] == pytest.approx(0.6) and means["overall"]["n"] == 3
    assert means["basic"]["std"] == pytest.approx(np.std([0.9, 0.6], ddof=1))
    assert skill_groups({"x": None, "y": None})["overall"] == ["x", "y"]  # no tag file read: overall is everything
    assert list(skill_groups(tags))[:-1] == [s for s in SKILLS if s in means]


def test_agreement_over_released_image_cells(compose_cfg, tmp_path):
    """Two released models' images (method=external) on the embedded 8-prompt sample, scored by a tiny CLIP: the
    command's overall agreement is that of the stored scores against the mean ratings of each image's model."""
    from t2ibench.agreement_cli import main
    from t2ibench.run_store import RunStore
    from t2ibench.runner import run_cell

    prompts = benchmarks.load("genai_bench", sample=True)
    rng = np.random.default_rng(0)
    results = None
    for model in ("DALLE_3", "SDXL_Base"):
        folder = tmp_path / "released" / model
        for prompt in prompts:  # the zip's <id>.jpeg laid out as <prompt id>/<seed>.jpeg
            (folder / prompt.id).mkdir(parents=True)
            pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / prompt.id / "0.jpeg")
        cfg = compose_cfg(
            [
                "model=external",
                f"model.name={model}",
                "method=external",
                f"method.image_dir={folder}",
                "benchmark=genai_bench",
                "benchmark.sample=true",
                "evaluators=[clip_score]",
                "evaluator.clip_score.backbone=tiny",
                "run.seeds=[0]",
                "experiment_name=genai",
            ]
        )
        summary = run_cell(cfg)
        assert summary["images"] == 8
        results = tmp_path / "results" / "stand-ins" / "genai"  # a tiny evaluator: a stand-in cell
    assert main([str(results), "--evaluator", "clip_score"]) == 0
    human, metric = [], []
    for store in sorted((tmp_path / "runs").rglob("samples.jsonl")):
        run = RunStore(store.parent)
        scores = run.read_scores("clip_score")
        model = "DALLE_3" if "DALLE_3" in str(store) else "SDXL_Base"
        for record in run.samples():
            ratings = record["prompt"]["metadata"]["human_alignment"][model]
            human.append(sum(ratings) / 3)
            metric.append(float(scores[scores["prompt_id"] == record["prompt"]["id"]]["clip_score"].iloc[0]))
    assert len(human) == 16
    table = (results / "agreement_clip_score_clip_score.csv").read_text().splitlines()
    overall = dict(zip(table[0].split(","), table[-1].split(","), strict=True))
    assert overall["skill"] == "overall" and int(overall["n"]) == 16
    expected = agreement(human, metric)
    for key in ("pearson", "kendall_tau_b", "pairwise_accuracy"):
        assert float(overall[key]) == pytest.approx(expected[key], abs=1e-9)
    skills = (results / "genai_bench_clip_score_clip_score.md").read_text()
    assert "tiny stand-in" in skills and "DALLE_3" in skills and "SDXL_Base" in skills


# -- released images, JPEG round trip, archives, per-skill columns -------------------------------------------------
def _released(folder, prompts, seed=0):
    """One random JPEG per prompt named by its id, as in a GenAI-Bench zip."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prompt in prompts:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{prompt.id}.jpeg")
    return folder


def test_external_layout_reads_one_image_per_prompt(compose_cfg, released_overrides, tmp_path):
    from t2ibench.run_store import RunStore
    from t2ibench.runner import run_cell

    prompts = benchmarks.load("genai_bench", sample=True)
    folder = _released(tmp_path / "DALLE_3", prompts)
    overrides = [*released_overrides(folder), "benchmark.sample=true"]
    summary = run_cell(compose_cfg(overrides))
    store = RunStore(summary["store"])
    record = store.records()[("00003", 0)]
    with Image.open(folder / "00003.jpeg") as original:
        assert np.array_equal(np.asarray(store.load_image(record)), np.asarray(original.convert("RGB")))
    assert summary["images"] == 8 and record["pipeline"] == "external"
    with pytest.raises(T2IBenchError, match=r"holds one image per prompt: run one seed"):
        run_cell(compose_cfg([*overrides, "run.seeds=[0,1]"]))
    with pytest.raises(T2IBenchError, match=r"method.layout='\{id\}'"):
        run_cell(compose_cfg([*overrides, "method.layout='{id}'"]))
    (folder / "00005.jpeg").unlink()
    with pytest.raises(T2IBenchError, match=r"1 of 8 images are missing, e\.g\. .*DALLE_3/00005\.png"):
        run_cell(compose_cfg([*overrides, "experiment_name=other", "model.name=SDXL_Base"]))


def test_the_tiny_model_stands_in_for_released_images(compose_cfg):
    """On the tiny flow method=external samples with the tiny model (image_dir: tiny), as the SD baseline would."""
    from t2ibench.run_store import RunStore
    from t2ibench.runner import run_cell

    common = ["benchmark=genai_bench", "benchmark.n=2", "generation.num_inference_steps=1"]
    external = run_cell(compose_cfg(["method=external", *common]))  # model=tiny: its stand_ins say image_dir: tiny
    baseline = run_cell(compose_cfg(["method=sd", *common]))
    assert external["images"] == 2 and external["table"]["method"].tolist() == ["external"]
    ours, theirs = RunStore(external["store"]), RunStore(baseline["store"])
    for key, record in ours.records().items():
        assert record["image_sha256"] == theirs.records()[key]["image_sha256"]


def test_jpeg_quality_stores_what_the_official_evaluator_reads(compose_cfg):
    """run.jpeg_quality: the stored image is the sampled one through a JPEG of that quality; the store's key says so,
    and a run without it keeps the key it always had."""
    import io

    from t2ibench.run_store import RunStore
    from t2ibench.runner import run_cell

    common = ["benchmark.n=1", "generation.num_inference_steps=1", "evaluators=[]"]
    plain = run_cell(compose_cfg(common))
    jpeg = run_cell(compose_cfg([*common, "run.jpeg_quality=75"]))
    assert plain["store"] != jpeg["store"]
    assert "jpeg_quality" not in RunStore(plain["store"]).meta()["generation_config"]
    ((key, record),) = RunStore(plain["store"]).records().items()
    sampled = RunStore(plain["store"]).load_image(record)
    buffer = io.BytesIO()
    sampled.save(buffer, format="JPEG", quality=75)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    stored = RunStore(jpeg["store"]).load_image(RunStore(jpeg["store"]).records()[key])
    assert np.array_equal(np.asarray(stored), expected) and not np.array_equal(expected, np.asarray(sampled))


def test_a_zip_is_extracted_once_and_safely(tmp_path):
    import zipfile

    from t2ibench.data_files import ResolvedFile, data_path, extract

    folder = tmp_path / "genai_bench" / "images_527"
    folder.mkdir(parents=True)
    wrapped = folder / "DALLE_3.zip"
    with zipfile.ZipFile(wrapped, "w") as archive:  # members inside a folder of the zip's own name: unwrapped
        archive.writestr("DALLE_3/00001.jpeg", b"a")
        archive.writestr("DALLE_3/00002.jpeg", b"b")
    target = extract(ResolvedFile(wrapped, "x", False))
    assert target == folder / "DALLE_3" and sorted(p.name for p in target.iterdir()) == ["00001.jpeg", "00002.jpeg"]
    assert extract(ResolvedFile(wrapped, "x", False)) == target  # once
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no scratch folder left
    flat = folder / "SDXL_Base.zip"
    with zipfile.ZipFile(flat, "w") as archive:
        archive.writestr("00001.jpeg", b"c")
    assert (extract(ResolvedFile(flat, "x", False)) / "00001.jpeg").read_bytes() == b"c"
    evil = folder / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../outside.jpeg", b"d")
    with pytest.raises(T2IBenchError, match="would be written outside its folder"):
        extract(ResolvedFile(evil, "x", False))
    assert data_path("genai_bench/images_527/DALLE_3", data_dir=tmp_path) == target


def test_tables_hold_genai_benchs_per_skill_means(compose_cfg, released_overrides, data_dir, tmp_path):
    """With the tag file, a cell's table row has <metric>.<skill> for every tag of its prompts and .overall over the
    tagged prompts, each the mean of its prompts' scores (t2v_metrics' evaluate.py)."""
    import pandas as pd

    from t2ibench.run_store import RunStore
    from t2ibench.runner import run_cell

    prompts = benchmarks.load("genai_bench", variant="527", data_dir=str(data_dir))[:6]
    folder = _released(tmp_path / "DALLE_3", prompts)
    options = ["method.allow_missing=true", "benchmark.variant=527", f"benchmark.data_dir={data_dir}"]
    summary = run_cell(compose_cfg([*released_overrides(folder), *options]))
    scores = RunStore(summary["store"]).read_scores("clip_score").set_index("prompt_id")["clip_score"]
    table = pd.read_csv(tmp_path / "results" / "stand-ins" / "default" / "table.csv").iloc[0]
    assert table["clip_score.attribute"] == pytest.approx(scores[["00001", "00002", "00003"]].mean())
    assert table["clip_score.counting"] == pytest.approx(scores[["00004", "00005"]].mean())
    assert table["clip_score.basic_n"] == 4
    assert table["clip_score.overall"] == pytest.approx(scores[["00001", "00002", "00003", "00004", "00005"]].mean())
    assert table["clip_score"] == pytest.approx(scores.mean())  # every image, tagged or not (00006 has no tag)
    from t2ibench.tables import metric_spec

    assert metric_spec("clip_score.spatial_relation").higher_is_better is True
