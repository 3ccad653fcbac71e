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


# -- VQAScore: the hub-shaped checkpoints --------------------------------------------------------------------------
HUB = FIXTURES / "hub"
HUB_IDS = {
    "clip-flant5": "zhiqiulin/clip-flant5-xxl",
    "llava": "liuhaotian/llava-v1.5-13b",
    "qwen2_vl": "Qwen/Qwen2-VL-7B-Instruct",
}


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """tests/fixtures/reference/hub laid out as an offline Hugging Face cache, which the hub ids below resolve to
    (through the same code a real hub id takes: snapshot_download / from_pretrained at a revision)."""
    import huggingface_hub.constants

    from t2ibench import backbones

    cache = tmp_path_factory.mktemp("hf-hub")
    index = checkpoints.hub_cache(HUB, cache)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        backbones.clear("vqa")
        yield index
    backbones.clear("vqa")


def hub_cfg(family: str, batch_size: int = 4, revision: str = "main") -> dict:
    """A VQAScore config that loads ``family``'s fixture by its real hub id, offline, in float32 on the CPU."""
    return {
        "family": family,
        "model": HUB_IDS[family],
        "revision": revision,
        "dtype": "float32",
        "device": "cpu",
        "batch_size": batch_size,
    }


def vqa_table(cfg: dict, ref: dict) -> np.ndarray:
    """t2ibench's VQAScore of every (image, text) of a fixture as an images x texts table, in batches of the config."""
    pictures, texts = images(ref["images"]), ref["texts"]
    flat = vqa_backbone.score_native(cfg, [p for p in pictures for _ in texts], [t for _ in pictures for t in texts])
    return np.array(flat).reshape(len(pictures), len(texts))


def test_the_fixture_checkpoints_are_shaped_like_the_real_ones(hub_cache):
    """What the issue asked of the fixtures, checked on the files: CLIP-FlanT5 and LLaVA as .bin shards with
    pytorch_model.bin.index.json, Qwen2-VL as safetensors shards; Flan-T5's and Qwen2-VL's vocabularies padded past the
    tokenizer (to a multiple of 128), LLaVA's not; every head untied; the towers a .bin CLIPModel repository."""

    def folder(repo, label="main"):
        return HUB / hub_cache[repo]["revisions"][checkpoints.revision_of(repo, label)]

    for repo, pattern in (
        ("zhiqiulin/clip-flant5-xxl", "pytorch_model-*.bin"),
        ("liuhaotian/llava-v1.5-13b", "pytorch_model-*.bin"),
        ("Qwen/Qwen2-VL-7B-Instruct", "model-*.safetensors"),
    ):
        files = sorted(folder(repo).glob(pattern))
        assert len(files) >= 2, repo
        index = json.loads(next(folder(repo).glob("*.index.json")).read_text())
        assert set(index["weight_map"].values()) == {f.name for f in files}
        config = json.loads((folder(repo) / "config.json").read_text())
        assert config["tie_word_embeddings"] is False, repo
    flan = fixture("clip_flant5", "scores.json")
    assert flan["checkpoint_vocabulary"] == 256 > flan["tokenizer_length"] == 201
    assert flan["scored_vocabulary"] == flan["tokenizer_length"]  # the reference's resize_token_embeddings
    qwen = fixture("qwen2_vl", "scores.json")
    assert qwen["scored_vocabulary"] == 384 > qwen["tokenizer_length"]  # no resize: all rows take part
    assert fixture("llava", "scores.json")["scored_vocabulary"] == 600
    # save_pretrained keeps the aliases of the shared embeddings in .bin files (CLIPT5ForConditionalGeneration's own
    # embed_tokens included); the reference loads them, and so must t2ibench
    weight_map = json.loads((folder("zhiqiulin/clip-flant5-xxl") / "pytorch_model.bin.index.json").read_text())
    assert {"shared.weight", "embed_tokens.weight", "encoder.embed_tokens.weight"} <= set(weight_map["weight_map"])
    assert sorted(folder("openai/clip-vit-large-patch14-336").iterdir())[-1].name == "pytorch_model.bin"


# -- VQAScore: CLIP-FlanT5 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [4, 1])
def test_clip_flant5_vqascore_equals_t2v_metrics(hub_cache, batch_size):
    """t2v-metrics' clip-flant5-xxl entry and t2ibench's default family, both by hub id: square and non-square images,
    a multi-sentence text, one cut at the 2048-token limit, characters the T5 vocabulary lacks (<unk>), runs of spaces,
    literal special tokens; the scores are a softmax over the tokenizer's 201 rows of the checkpoint's 256."""
    ref = fixture("clip_flant5", "scores.json")
    assert ref["question_template"] == vqa_backbone.family("clip-flant5").template
    cfg = {**hub_cfg("clip-flant5", batch_size), "tokenizer": "google/flan-t5-xxl"}
    assert_scores_equal(vqa_table(cfg, ref), np.array(ref["scores"]))
    # the reference's own batch-1 forward agrees with its batched one
    assert_scores_equal(np.array(ref["scores_one_pair_per_forward"]), np.array(ref["scores"])[:1])


def test_clip_flant5_token_ids_equal_t2v_metrics(hub_cache):
    """The encoder ids of each question (the slow T5 tokenizer of 4.49 against transformers 5's), around the image."""
    from t2ibench.backbones.clip_flant5 import SYSTEM_MESSAGE

    ref = fixture("clip_flant5", "scores.json")
    model = vqa_backbone.load({**hub_cfg("clip-flant5"), "tokenizer": "google/flan-t5-xxl"})
    for text, ids in zip(ref["texts"], ref["input_ids"], strict=True):
        prompt = f"{SYSTEM_MESSAGE} USER: <image>\n{ref['question_template'].format(text)} ASSISTANT: "
        head, tail = (model.tokenizer(chunk).input_ids for chunk in prompt.split("<image>"))
        assert head + [-200] + tail == ids, text[:40]


def test_clip_flant5_scores_over_the_tokenizer_vocabulary(hub_cache):
    """The checkpoint's 256 LM-head rows are cut to the tokenizer's 201, as the reference's resize_token_embeddings
    does; without the cut the score is lower (the padding rows take part of the mass) and misses the reference."""
    from t2ibench.backbones import clip_flant5
    from t2ibench.backbones.clip_flant5 import CLIPFlanT5

    ref = fixture("clip_flant5", "scores.json")
    model = CLIPFlanT5.from_pretrained("zhiqiulin/clip-flant5-xxl", "main", "google/flan-t5-xxl", "float32")
    assert model.t5.lm_head.weight.shape[0] == model.t5.get_input_embeddings().weight.shape[0] == 201
    assert model.t5.lm_head.weight is not model.t5.get_input_embeddings().weight
    question = [ref["question_template"].format(ref["texts"][0])]
    cut = model.answer_probability(images(ref["images"][:1]), question)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clip_flant5, "score_over_tokenizer_vocabulary", lambda *args: None)
        full = CLIPFlanT5.from_pretrained("zhiqiulin/clip-flant5-xxl", "main", "google/flan-t5-xxl", "float32")
    assert full.t5.lm_head.weight.shape[0] == 256
    uncut = full.answer_probability(images(ref["images"][:1]), question)
    assert cut[0] == pytest.approx(ref["scores"][0][0], rel=1e-4)
    assert uncut[0] < cut[0] * (1 - 1e-3)


def test_clip_flant5_refuses_a_tokenizer_longer_than_the_checkpoint():
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from t2ibench.backbones.clip_flant5 import score_over_tokenizer_vocabulary
    from t2ibench.errors import T2IBenchError

    t5 = T5ForConditionalGeneration(
        T5Config(vocab_size=64, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2, tie_word_embeddings=False)
    )
    with pytest.raises(T2IBenchError, match="tokenizer has 70 tokens, the checkpoint 64 .*randomly initialised"):
        score_over_tokenizer_vocabulary(t5, 70, "ckpt")
    head = t5.lm_head.weight.detach().clone()
    score_over_tokenizer_vocabulary(t5, 60, "ckpt")
    assert torch.equal(t5.lm_head.weight, head[:60]) and t5.config.vocab_size == 60


def test_clip_flant5_refuses_aliases_that_differ_from_the_shared_embeddings():
    import torch

    from t2ibench.backbones.clip_flant5 import _shared_embeddings
    from t2ibench.errors import T2IBenchError

    shared = torch.ones(3, 2)
    assert set(_shared_embeddings({"embed_tokens.weight": shared}, "x")) == {"shared.weight"}
    # a save without aliases (safetensors-style: shared alone) loads as it is
    assert set(_shared_embeddings({"shared.weight": shared}, "x")) == {"shared.weight"}
    with pytest.raises(T2IBenchError, match="encoder.embed_tokens.weight differs from shared.weight"):
        _shared_embeddings({"shared.weight": shared, "encoder.embed_tokens.weight": shared * 2}, "ckpt")


# -- VQAScore: LLaVA-1.5 ---------------------------------------------------------------------------------------------
def test_llava_token_ids_and_labels_equal_t2v_metrics(hub_cache):
    """The ids t2v-metrics' ``tokenizer_image_token`` builds with transformers 4.49's slow LlamaTokenizer (the image as
    -200, the later chunk without BOS and with its dummy-prefix piece, "Yes</s>" with </s> as the EOS id; runs of
    spaces; a literal <unk>) and where the labels start, from the same tokenizer.model read by transformers 5."""
    ref = fixture("llava", "scores.json")
    model = vqa_backbone.load(hub_cfg("llava"))
    assert model.tokenizer.unk_token_id == ref["pad_token_id"]
    for text, ids, start in zip(ref["texts"], ref["input_ids"], ref["label_start"], strict=True):
        prompt = model.question_prompt(ref["question_template"].format(text))
        assert model.token_ids(prompt + "Yes</s>") == ids
        assert len(model.token_ids(prompt)) - 1 == start


@pytest.mark.parametrize("batch_size", [4, 1])
def test_llava_vqascore_equals_t2v_metrics(hub_cache, batch_size):
    """liuhaotian/llava-v1.5-13b's layout (float16 .bin shards holding the tower's copy, which both ignore; the tower
    from openai/clip-vit-large-patch14-336), square and non-square images, a multi-sentence text, a 760-token one,
    runs of spaces and a literal <unk> (the reference's pad token, masked); batches of 4 (right padded) and 1."""
    ref = fixture("llava", "scores.json")
    assert ref["question_template"] == vqa_backbone.family("llava").template
    assert_scores_equal(vqa_table(hub_cfg("llava", batch_size), ref), np.array(ref["scores"]))
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

    request.getfixturevalue("hub_cache")
    ref = fixture(family.replace("-", "_"), "scores.json")
    ours = vqa_table(hub_cfg(family), ref)
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


# -- ReBind's yes/no VLM: LLaVA-1.6 -------------------------------------------------------------------------------------
def test_llava_next_replies_equal_rebinds_get_batch_response(hub_cache):
    """llava-hf/llava-v1.6-vicuna-7b-hf's layout (float16 safetensors shards, <image> and <pad> added, 640 rows, anyres
    tiles by its image_grid_pinpoints), by hub id: t2ibench's prompt and replies equal what ReBind's own
    get_batch_response produced in the reference environment, for square, wide, tall and large images, and the
    default answer rule decides as ReBind's parse_yes_no."""
    from t2ibench.evaluators.role_bias import yes_answer

    ref = fixture("llava_next", "replies.json")
    model = vqa_backbone.load(
        {"family": "llava_next", "model": "llava-hf/llava-v1.6-vicuna-7b-hf", "dtype": "float32", "device": "cpu"}
    )
    assert model.prompt(ref["questions"][0]) == ref["prompt"]
    for picture, replies, parsed in zip(images(ref["images"]), ref["replies"], ref["parse_yes_no"], strict=True):
        for question, reply, decision in zip(ref["questions"], replies, parsed, strict=True):
            assert model.generate([picture], question, 5) == [reply]
            assert yes_answer(reply) == (1.0 if decision == "yes" else 0.0)
    assert {d for row in ref["parse_yes_no"] for d in row} == {"yes", "unknown"}  # both outcomes occur


# -- VQAScore: Qwen2-VL ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [3, 1])
def test_qwen2_vl_vqascore_equals_t2v_metrics(hub_cache, batch_size):
    """Qwen/Qwen2-VL-7B-Instruct's layout (bfloat16 safetensors shards, 384 vocabulary rows for 370 tokens: the
    reference does not resize, so all rows take part here too), the first-token rule on the checkpoint's chat template,
    image grid and generation config: t2v-metrics' scores are the softmax of *processed* logits, so the checkpoint's
    repetition penalty (which greedy decoding applies) is in the reference number, and t2ibench, loading the same
    generation_config.json, gives it too."""
    ref = fixture("qwen2_vl", "scores.json")
    assert ref["question_template"] == vqa_backbone.family("qwen2_vl").template
    model = vqa_backbone.load(hub_cfg("qwen2_vl", batch_size))
    assert model.model.lm_head.weight.shape[0] == ref["scored_vocabulary"] > len(model.tokenizer)
    assert_scores_equal(vqa_table(hub_cfg("qwen2_vl", batch_size), ref), np.array(ref["scores"]))
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


def test_qwen2_vl_attention_implementation_is_an_option_and_part_of_the_score_key(hub_cache):
    """t2v-metrics' preset loads Qwen2-VL with flash_attention_2; t2ibench's default is sdpa (the numbers above), the
    reference's choice is one option away, and it is part of what identifies a score."""
    from t2ibench.errors import T2IBenchError

    key = vqa_backbone.backend_key(hub_cfg("qwen2_vl"))
    assert key["attn_implementation"] == "sdpa"
    # the native scorer's revision is in the key: pair scores cached before its numbers changed are not reused
    assert key["scorer_revision"] == vqa_backbone.SCORER_REVISION == 2
    assert vqa_backbone.backend_key({**hub_cfg("qwen2_vl"), "backend": "t2v_metrics"})["scorer_revision"] is None
    flash = {**hub_cfg("qwen2_vl"), "attn_implementation": "flash_attention_2"}
    assert vqa_backbone.backend_key(flash) != key
    assert "attn_implementation" not in vqa_backbone.backend_key(hub_cfg("llava"))
    with pytest.raises(T2IBenchError, match="attn_implementation='flash_attention_2' is not available here"):
        vqa_backbone.load(flash)  # no flash-attn package (and no CUDA) on this machine
