"""Learned evaluators against their reference packages, on the same tiny checkpoints and images.

The reference side was recorded once by ``tests/reference/make_fixtures.py`` in its own environment (t2v-metrics 3.0
with transformers 4.49, torch-fidelity, clean-fid; README "Evaluator parity"); the fixtures hold the checkpoints as
(manifest, seed), the inputs, the reference numbers and the package versions. Here the same checkpoints are rebuilt
bit for bit (``tests/reference/checkpoints.py``), loaded through t2ibench's own loading code from a local folder, and
scored by t2ibench; nothing here compares t2ibench with itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from t2ibench.backbones import vqa as vqa_backbone

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "reference"
sys.path.insert(0, str(HERE / "reference"))
import checkpoints  # noqa: E402


def fixture(*parts: str) -> dict:
    return json.loads(FIXTURES.joinpath(*parts).read_text())


def images(names: list[str]) -> list:
    from PIL import Image

    out = []
    for name in names:
        with Image.open(FIXTURES / "images" / name) as image:
            out.append(image.convert("RGB"))
    return out


def assert_scores_equal(ours: np.ndarray, theirs: np.ndarray, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Per pair: |ours - ref| <= 1e-5 and, because random checkpoints give small probabilities, <= 1e-4 of the value."""
    diff = np.abs(ours - theirs)
    assert diff.max() <= atol, diff.max()
    assert (diff / np.abs(theirs)).max() <= rtol, (diff / np.abs(theirs)).max()


# -- VQAScore: CLIP-FlanT5 -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip_flant5_folder(tmp_path_factory):
    spec = fixture("clip_flant5", "checkpoint.json")
    _, folder = checkpoints.rebuild_clip_flant5(
        tmp_path_factory.mktemp("clip-flant5"), spec, FIXTURES / "clip_flant5" / "tokenizer"
    )
    return folder


def clip_flant5_scores(folder: Path, ref: dict, batch_size: int) -> np.ndarray:
    cfg = {
        "family": "clip-flant5",
        "model": str(folder),
        "tokenizer": str(folder),
        "dtype": "float32",
        "device": "cpu",
        "batch_size": batch_size,
    }
    return vqa_table(cfg, ref)


def vqa_table(cfg: dict, ref: dict) -> np.ndarray:
    """t2ibench's VQAScore of every (image, text) of a fixture as an images x texts table, in batches of the config."""
    pictures, texts = images(ref["images"]), ref["texts"]
    flat = vqa_backbone.score_native(cfg, [p for p in pictures for _ in texts], [t for _ in pictures for t in texts])
    return np.array(flat).reshape(len(pictures), len(texts))


@pytest.mark.parametrize("batch_size", [4, 1])
def test_clip_flant5_vqascore_equals_t2v_metrics(clip_flant5_folder, batch_size):
    """Square and non-square images (padded to a square with the CLIP mean colour), a multi-sentence text and one cut
    at t2v-metrics' 2048-token limit; batches of 4 (padded) and single pairs."""
    ref = fixture("clip_flant5", "scores.json")
    assert ref["question_template"] == vqa_backbone.family("clip-flant5").template
    ours = clip_flant5_scores(clip_flant5_folder, ref, batch_size)
    assert_scores_equal(ours, np.array(ref["scores"]))
    # the reference's own batch-1 forward agrees with its batched one
    assert_scores_equal(np.array(ref["scores_one_pair_per_forward"]), np.array(ref["scores"])[:1])


# -- VQAScore: LLaVA-1.5 ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llava_folder(tmp_path_factory):
    spec = fixture("llava", "checkpoint.json")
    _, folder = checkpoints.rebuild_llava(tmp_path_factory.mktemp("llava"), spec, FIXTURES / "llava" / "tokenizer")
    return folder


def llava_scores(folder: Path, ref: dict, batch_size: int) -> np.ndarray:
    cfg = {"family": "llava", "model": str(folder), "dtype": "float32", "device": "cpu", "batch_size": batch_size}
    return vqa_table(cfg, ref)


def test_llava_token_ids_and_labels_equal_t2v_metrics(llava_folder):
    """The ids t2v-metrics' ``tokenizer_image_token`` builds with transformers 4.49's slow LlamaTokenizer (the image as
    -200, the later chunk without BOS and with its dummy-prefix piece, "Yes</s>" with </s> as the EOS id) and where the
    labels start, from the same tokenizer.model read by transformers 5."""
    from t2ibench.backbones import vqa as backbone

    ref = fixture("llava", "scores.json")
    model = backbone.load({"family": "llava", "model": str(llava_folder), "dtype": "float32", "device": "cpu"})
    for text, ids, start in zip(ref["texts"], ref["input_ids"], ref["label_start"], strict=True):
        prompt = model.question_prompt(ref["question_template"].format(text))
        assert model.token_ids(prompt + "Yes</s>") == ids
        assert len(model.token_ids(prompt)) - 1 == start


@pytest.mark.parametrize("batch_size", [4, 1])
def test_llava_vqascore_equals_t2v_metrics(llava_folder, batch_size):
    """The liuhaotian layout (Llama + mm_projector, the tower from mm_vision_tower), square and non-square images,
    a multi-sentence text and a 760-token one; batches of 4 (right padded) and single pairs."""
    ref = fixture("llava", "scores.json")
    assert ref["question_template"] == vqa_backbone.family("llava").template
    assert_scores_equal(llava_scores(llava_folder, ref, batch_size), np.array(ref["scores"]))
    assert_scores_equal(np.array(ref["scores_one_pair_per_forward"]), np.array(ref["scores"])[:1])


def test_llava_hf_conversions_are_refused_with_the_checkpoint_to_use(tmp_path):
    import json as json_module

    from t2ibench.backbones.llava15 import LLaVA15
    from t2ibench.errors import T2IBenchError

    (tmp_path / "config.json").write_text(json_module.dumps({"model_type": "llava", "text_config": {}}))
    with pytest.raises(T2IBenchError, match="llava-hf conversion.*liuhaotian/llava-v1.5-13b"):
        LLaVA15.from_pretrained(str(tmp_path))


@pytest.mark.parametrize("family", ["clip-flant5", "llava", "qwen2_vl"])
def test_role_bias_beta_from_our_scores_equals_beta_from_the_reference(family, request):
    """beta = mean_i VQA(I_i, c_rev) - mean_i VQA(I_i, c) (ReBind, ../shared/reference/evaluators.md 2.2), per frequency,
    macro over compositions: the first two images are a frequent composition 'cat chasing mouse', the last two a rare
    one 'mouse chasing cat'; the VQAScores of each family's model, ours against t2v-metrics'."""
    from t2ibench.evaluators.role_bias import composition_table

    name = family.replace("-", "_")
    ref = fixture(name, "scores.json")
    folder = request.getfixturevalue(f"{name}_folder")
    cfg = {"family": family, "model": str(folder), "dtype": "float32", "device": "cpu", "batch_size": 4}
    if family == "clip-flant5":
        cfg["tokenizer"] = str(folder)
    ours = vqa_table(cfg, ref)
    theirs = np.array(ref["scores"])
    layout = [("a", "frequent", 0, 1), ("a", "frequent", 0, 1), ("b", "rare", 1, 0), ("b", "rare", 1, 0)]

    def rows(table):
        return [
            {"prompt_id": pid, "frequency": freq, "ita_M": table[i, m], "ita_U": table[i, u]}
            for i, (pid, freq, m, u) in enumerate(layout)
        ]

    by_hand = {
        "frequent": theirs[:2, 1].mean() - theirs[:2, 0].mean(),
        "rare": theirs[2:, 0].mean() - theirs[2:, 1].mean(),
    }
    from_reference = composition_table(rows(theirs), ["ita"])
    from_ours = composition_table(rows(ours), ["ita"])
    for frequency, beta in by_hand.items():
        assert from_reference[frequency]["ita.beta"] == pytest.approx(beta, abs=1e-12)
        assert from_ours[frequency]["ita.beta"] == pytest.approx(beta, abs=1e-6)


# -- FID ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    import torch

    spec = fixture("fid", "checkpoint.json")
    path = tmp_path_factory.mktemp("fid") / "inception.pth"
    torch.save(checkpoints.state_dict(spec["manifest"], spec["seed"], spec["gains"]), path)
    return path


def fid_features(weights: Path, convention: str) -> dict[str, np.ndarray]:
    from t2ibench.evaluators.fid import FIDEvaluator

    ref = fixture("fid", "scores.json")
    evaluator = FIDEvaluator(
        {"feature_extractor": "inception", "inception_weights": str(weights), "convention": convention, "device": "cpu"}
    )
    out = {}
    for name, files in ref["sets"].items():
        paths = [FIXTURES / "fid" / name / f for f in files]
        out[name] = evaluator.features([__import__("PIL.Image").Image.open(p) for p in paths])
    return out


@pytest.mark.parametrize(
    "convention, reference_fid",
    [("torch_fidelity", "fid_torch_fidelity"), ("torchmetrics", "fid_torchmetrics"), ("clean", "fid_clean_fid")],
)
def test_fid_features_and_value_equal_the_reference_packages(inception_weights, convention, reference_fid):
    """torch_fidelity: torch-fidelity's network on the uint8 image (TF1 bilinear resize inside) and its
    calculate_metrics FID; torchmetrics: FrechetInceptionDistance at its defaults (antialiased resize); clean:
    clean-fid's float bicubic resize, feature loop and frechet_distance. Same random FID-Inception state dict,
    2 x 10 images of 48 x 40."""
    from t2ibench.evaluators.fid import statistics, torchmetrics_fid

    ref = fixture("fid", "scores.json")[convention]
    ours = fid_features(inception_weights, convention)
    for name, features in ours.items():
        np.testing.assert_allclose(features[:, :64], np.array(ref["features"][name]["head"]), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(features, axis=1), ref["features"][name]["norm"], rtol=1e-5)
    value = torchmetrics_fid(statistics(ours["a"]), ours["b"])
    assert value == pytest.approx(ref[reference_fid], rel=1e-4)


def test_fid_conventions_and_implementations_differ_by_the_documented_amounts():
    """The three resizes give different features and FIDs (README "Evaluator parity" states the sizes); torchmetrics
    with antialias=False is torch-fidelity."""
    ref = fixture("fid", "scores.json")
    heads = {c: np.array(ref[c]["features"]["a"]["head"]) for c in ("clean", "torch_fidelity", "torchmetrics")}
    assert min(np.abs(heads[a] - heads[b]).max() for a in heads for b in heads if a < b) > 1e-3
    tf = ref["torch_fidelity"]
    assert tf["fid_torchmetrics_antialias_false"] == pytest.approx(tf["fid_torch_fidelity"], rel=1e-5)
    assert ref["torchmetrics"]["fid_torchmetrics"] != pytest.approx(tf["fid_torch_fidelity"], rel=1e-3)


# -- VQAScore: Qwen2-VL ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qwen2_vl_folder(tmp_path_factory):
    import shutil

    spec = fixture("qwen2_vl", "checkpoint.json")
    folder = tmp_path_factory.mktemp("qwen2-vl")
    checkpoints.write_folder(folder, spec["config"], spec["manifest"], spec["seed"], spec["gains"])
    for file in (FIXTURES / "qwen2_vl" / "files").iterdir():
        shutil.copy(file, folder / file.name)
    return folder


@pytest.mark.parametrize("batch_size", [3, 1])
def test_qwen2_vl_vqascore_equals_t2v_metrics(qwen2_vl_folder, batch_size):
    """The first-token rule on the checkpoint's chat template, image grid and generation config: t2v-metrics' scores
    are the softmax of *processed* logits, so the checkpoint's repetition penalty (which greedy decoding applies) is
    in the reference number, and t2ibench, loading the same generation_config.json, gives it too."""
    ref = fixture("qwen2_vl", "scores.json")
    assert ref["question_template"] == vqa_backbone.family("qwen2_vl").template
    cfg = {
        "family": "qwen2_vl",
        "model": str(qwen2_vl_folder),
        "dtype": "float32",
        "device": "cpu",
        "batch_size": batch_size,
    }
    assert_scores_equal(vqa_table(cfg, ref), np.array(ref["scores"]))
    # the penalty is visible: without it the reference's scores move by more than the tolerance
    unpenalised = np.array(ref["scores_without_repetition_penalty"])
    assert np.abs(unpenalised - np.array(ref["scores"])[:1]).max() / unpenalised.max() > 1e-3


# -- BERTScore ---------------------------------------------------------------------------------------------------------
def test_bertscore_equals_bert_score_under_the_reference_transformers(tmp_path):
    """A DeBERTa-xlarge-MNLI-shaped checkpoint (48 layers, byte-level BPE) at bert-score's layer for that model (40),
    idf off, no rescaling: t2ibench's scorer on this environment's transformers equals bert-score 0.3.13 run on
    transformers 4.49 (the DDPO server's call, use_fast_tokenizer=True), including a candidate over 512 tokens."""
    from t2ibench.backbones import bert

    spec, ref = fixture("bertscore", "checkpoint.json"), fixture("bertscore", "scores.json")
    folder = tmp_path / "deberta"
    checkpoints.write_folder(folder, spec["config"], spec["manifest"], spec["seed"], spec["gains"])
    for file in (FIXTURES / "bertscore" / "files").iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    scorer = bert.load(str(folder), spec["num_layers"])
    precision, recall, f1 = scorer.score(ref["candidates"], ref["references"])
    for ours, theirs in ((recall, ref["recall"]), (precision, ref["precision"]), (f1, ref["f1"])):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-6)


# -- CLIP score and Q16 ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory, shared_dir):
    """The openai/CLIP checkpoint of the fixture converted to a transformers CLIPModel folder, with the openai/clip-vit-*
    preprocessor and the real CLIP BPE tokenizer (rebuilt from ../shared/clip-bpe)."""
    from safetensors.torch import save_file

    from t2ibench.clip_tokenizer import build_real_clip_tokenizer

    spec = fixture("clip", "checkpoint.json")
    config, state = checkpoints.openai_clip_to_hf(checkpoints.state_dict(spec["manifest"], spec["seed"], spec["gains"]))
    folder = tmp_path_factory.mktemp("clip")
    (folder / "config.json").write_text(json.dumps(config))
    save_file(
        {k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"}
    )
    (folder / "preprocessor_config.json").write_text(json.dumps(checkpoints.clip_preprocessor(224)))
    build_real_clip_tokenizer(shared_dir / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz").save_pretrained(str(folder))
    return folder


def test_clip_score_cosines_equal_openai_clip(clip_folder):
    """openai/CLIP's preprocessing (Resize 224 bicubic, CenterCrop, Normalize) and encoders against t2ibench's
    CLIPProcessor path on the same weights: square, wide, tall and 360x300 images, four texts."""
    from t2ibench.backbones import clip

    ref = fixture("clip", "scores.json")
    model, processor = clip.load(str(clip_folder))
    pictures = [Image_open(FIXTURES / p) for p in ref["images"]]
    ours = np.array([clip.cosines(model, processor, [p] * len(ref["texts"]), ref["texts"]) for p in pictures])
    np.testing.assert_allclose(ours, np.array(ref["cos"]), atol=1e-5)


def test_q16_decisions_and_probabilities_equal_the_reference_rule(clip_folder):
    """Q16 (100 x cos to the two prompt embeddings, argmax; HEIM's SimClassifier on openai/CLIP) on 24 images."""
    import torch

    from t2ibench.backbones import clip
    from t2ibench.evaluators.i2p_safety import q16_probabilities

    ref = fixture("clip", "scores.json")
    prompts = torch.from_numpy(checkpoints.tensor_for("q16_prompts", (2, 768), 11))
    model, processor = clip.load(str(clip_folder))
    probs = q16_probabilities(model, processor, [Image_open(FIXTURES / p) for p in ref["q16_images"]], prompts)
    assert probs.argmax(-1).tolist() == ref["q16_label"]
    assert 0 < sum(ref["q16_label"]) < len(ref["q16_label"])  # both decisions occur
    np.testing.assert_allclose(probs[:, 1].numpy(), ref["q16_prob"], atol=1e-5)


def Image_open(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")
