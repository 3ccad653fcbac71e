"""Record the reference side of the evaluator parity tests (``tests/test_reference_parity.py``) into
``tests/fixtures/reference/``: tiny checkpoints, inputs, and the numbers the reference packages give on them, with the
packages' versions. The VLM checkpoints (``hub/``) are saved by the reference classes' own ``save_pretrained`` in the
file formats of their hub repositories and loaded by hub id from an offline cache (see the "hub-shaped" section); the
others are a manifest plus a seed (``checkpoints.py``).

Run it in its own environment, never in the project's (README, "Evaluator parity"):

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/refvenv/bin/pip install transformers==4.49.0 sentencepiece protobuf opencv-python-headless qwen-vl-utils \
        torch-fidelity==0.4.0 clean-fid==0.1.35 torchmetrics==1.9.0 bert-score==0.3.13 openai-clip==1.0.1 \
        "setuptools<81" scipy safetensors accelerate
    /tmp/refvenv/bin/pip install --no-deps t2v-metrics==3.0
    /tmp/refvenv/bin/python tests/reference/make_fixtures.py --rebind <ReBind@19ea3fa checkout> \
        [--only clip_flant5,llava,qwen2_vl,llava_next,bertscore,fid,clip]

What runs is the reference code itself, unchanged: t2v-metrics' ``CLIPT5Model`` / ``LLaVAModel`` / ``Qwen2VLModel`` (their
``load_model`` on their own model entries and their ``forward``), ReBind's ``get_batch_response`` and ``parse_yes_no``
(its LLaVA-1.6 loaded as ``get_model`` loads it, in float32 with sdpa), bert-score's ``BERTScorer``, openai/CLIP's ``clip.load``
and preprocessing, torch-fidelity's ``FeatureExtractorInceptionV3`` and
clean-fid's resize, feature loop and ``frechet_distance``. Two things around it are ours and documented:
* ``import t2v_metrics`` needs ffmpeg and imports every wrapper of the package (LLaVA-NeXT, decord, ...); the package
  directories are registered without running their ``__init__`` so that one wrapper module loads on its own, and
  ``decord`` (imported at the top of the Qwen wrapper for videos only) is given an empty module.
* t2v-metrics casts CLIP-FlanT5 and LLaVA-1.5 to bfloat16 and loads Qwen2-VL in bfloat16 with flash-attention; the
  parity run casts the loaded model to float32 (and uses sdpa attention), because the comparison is of the scoring
  path, not of bf16 rounding (for LLaVA the bf16-rounded RoPE frequencies are restored too); CLIP-FlanT5 and LLaVA are
  also run as shipped (bfloat16 on the CPU), which fails, and Qwen2-VL in bfloat16 (sdpa), recorded beside.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import checkpoints  # noqa: E402

FIXTURES = HERE.parent / "fixtures" / "reference"

SYSTEM_MSG = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
TEXTS = [
    "a cat chasing a mouse",
    "mouse chasing cat",
    "A red cube on top of a blue sphere. The sphere sits on a wooden table. Nothing else is in the room.",
    "an astronaut riding a horse, " + "very " * 700 + "detailed",  # > 2048 T5 tokens: t2v-metrics cuts it
]


def versions(*packages: str) -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


# -- images ----------------------------------------------------------------------------------------------------------
IMAGE_SIZES = {"square.png": (64, 64), "wide.png": (96, 40), "tall.png": (45, 80), "large.png": (360, 300)}


def make_images() -> list[Path]:
    """Smooth seeded colour fields (non-square ones included), committed as PNGs."""
    from PIL import Image

    folder = FIXTURES / "images"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, (w, h)) in enumerate(sorted(IMAGE_SIZES.items())):
        rng = np.random.RandomState(100 + i)
        coarse = rng.randint(0, 256, size=(4, 4, 3)).astype(np.uint8)
        image = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
        amplitude = 20 if w * h < 10_000 else 2
        noise = rng.randint(-amplitude, amplitude + 1, size=(h, w, 3))
        pixels = np.clip(np.asarray(image).astype(int) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
        paths.append(folder / name)
    return paths


# -- t2v-metrics without its package __init__ --------------------------------------------------------------------
def t2v_module(dotted: str) -> types.ModuleType:
    """Import ``t2v_metrics.<dotted>`` without running the package ``__init__`` files (see the module docstring)."""
    import importlib
    import importlib.util

    if "t2v_metrics" in sys.modules:
        root = Path(sys.modules["t2v_metrics"].__path__[0])
    else:
        root = Path(importlib.util.find_spec("t2v_metrics").submodule_search_locations[0])
    # only the packages whose __init__ imports every wrapper are registered bare; the others import as usual
    for name in ("t2v_metrics", "t2v_metrics.models", "t2v_metrics.models.vqascore_models"):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
            sys.modules[name] = package
    return importlib.import_module("t2v_metrics." + dotted)


# -- CLIP-FlanT5 -----------------------------------------------------------------------------------------------------
def train_t5_tokenizer(folder: Path) -> None:
    """A 300-piece sentencepiece unigram model in T5's convention (pad 0, eos 1, unk 2), saved as the slow T5Tokenizer
    and its fast tokenizer.json (as google/flan-t5-xxl ships both)."""
    import io

    import sentencepiece as spm
    from transformers import T5Tokenizer, T5TokenizerFast

    corpus = [SYSTEM_MSG, *TEXTS[:3], 'Does this figure show "{}"? Please answer yes or no.', "USER: ASSISTANT: Yes No"]
    corpus += ["Yes", "yes", "No", "a photo of a dog running on the beach", "very detailed", "riding horse astronaut"]
    corpus = corpus * 20
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        vocab_size=300,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        hard_vocab_limit=False,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model.getvalue())
    slow = T5Tokenizer(str(folder / "spiece.model"), extra_ids=100, model_max_length=2048)
    slow.save_pretrained(folder)
    T5TokenizerFast.from_pretrained(str(folder), from_slow=True).save_pretrained(folder)


# -- LLaVA-1.5 ---------------------------------------------------------------------------------------------------------
def train_llama_tokenizer(folder: Path) -> None:
    """A 600-piece sentencepiece BPE in Llama's convention (unk 0, bos 1, eos 2, byte fallback, dummy prefix, no
    whitespace folding, split digits), saved as the slow ``LlamaTokenizer`` with liuhaotian/llava-v1.5's tokenizer
    settings (``legacy: false``, ``model_max_length`` 2048, right padding, no pad token; tokenizer.model only)."""
    import io

    import sentencepiece as spm
    from transformers import LlamaTokenizer

    corpus = [SYSTEM_MSG, *TEXTS[:3], 'Does this figure show "{}"? Please answer yes or no.', "USER: ASSISTANT: Yes No"]
    corpus += ["Yes", "yes", "No", "a photo of a dog running on the beach", "very detailed", "riding horse astronaut"]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * 20),
        model_writer=model,
        vocab_size=600,
        model_type="bpe",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        normalization_rule_name="identity",
        character_coverage=1.0,
        hard_vocab_limit=False,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    slow = LlamaTokenizer(
        str(folder / "tokenizer.model"), legacy=False, model_max_length=2048, padding_side="right", pad_token=None
    )
    slow.save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("add_prefix_space")  # transformers 4.49 writes it; liuhaotian's file (older) has none: its default
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


# -- Qwen2-VL ----------------------------------------------------------------------------------------------------------
QWEN_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# shaped like the Qwen2-VL-Instruct checkpoints' generation_config.json: sampling settings and a repetition penalty,
# of which greedy decoding (t2v-metrics' do_sample=False) still applies the penalty to the scores it returns
QWEN_GENERATION = {"do_sample": True, "repetition_penalty": 1.05, "temperature": 0.01, "top_k": 1, "top_p": 0.001}


def qwen_tokenizer(folder: Path) -> None:
    """A byte-level BPE with Qwen2-VL's special tokens, saved as a Qwen2 tokenizer with the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ]
    corpus = [*TEXTS[:3], 'Does this image show "{}"?', "You are a helpful assistant. system user assistant Yes No"] * 8
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=special,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = QWEN_TEMPLATE
    fast.save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "Qwen2Tokenizer"
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1))


def qwen2_vl(images: list[Path]) -> None:
    import torch
    import transformers as tf

    out = FIXTURES / "qwen2_vl"
    repo = "Qwen/Qwen2-VL-7B-Instruct"
    folder = new_revision(repo)
    qwen_tokenizer(folder)
    tokenizer = tf.AutoTokenizer.from_pretrained(str(folder))
    processor = tf.Qwen2VLProcessor(
        image_processor=tf.Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 1280),
        tokenizer=tokenizer,
        chat_template=QWEN_TEMPLATE,
    )
    processor.save_pretrained(str(folder))
    ids = tokenizer.convert_tokens_to_ids
    # Qwen2-VL-7B-Instruct: 152,064 embedding and LM-head rows (untied) for a 151,657-token tokenizer
    config = tf.Qwen2VLConfig(
        vocab_size=padded_vocabulary(len(tokenizer)),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "in_chans": 3,
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        architectures=["Qwen2VLForConditionalGeneration"],
    )
    model = tf.Qwen2VLForConditionalGeneration(config)
    checkpoints.seed_module(model, 3, {"lm_head.weight": 2.0})
    model.to(torch.bfloat16)  # the Qwen2-VL checkpoints are bfloat16 safetensors shards
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="150KB")
    # shaped like the Instruct checkpoints' generation_config.json (written after save_pretrained, which writes its own)
    write_json(
        folder / "generation_config.json",
        dict(
            QWEN_GENERATION,
            eos_token_id=[ids("<|im_end|>"), tokenizer.pad_token_id],
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.pad_token_id,
        ),
    )
    refresh_cache()
    wrapper_mod = t2v_module("models.vqascore_models.qwen2vl_model") if "decord" in sys.modules else None
    if wrapper_mod is None:  # decord is imported by the wrapper for videos only: an empty module stands in
        import importlib.machinery

        decord = types.ModuleType("decord")
        decord.__spec__ = importlib.machinery.ModuleSpec("decord", None)
        decord.VideoReader, decord.cpu = None, None
        sys.modules["decord"] = decord
        wrapper_mod = t2v_module("models.vqascore_models.qwen2vl_model")
    entry = wrapper_mod.QWEN2_VL_MODELS["qwen2-vl-7b"]
    texts = TEXTS[:3] + EXTRA_TEXTS
    # flash_attention_2 (the entry's) has no CPU kernel: sdpa; float32 for the comparison, then bfloat16 as the entry
    entry["model"].update(torch_dtype=torch.float32, attn_implementation="sdpa")
    ref = wrapper_mod.Qwen2VLModel("qwen2-vl-7b", device="cpu")
    rows = int(ref.model.lm_head.weight.shape[0])
    scores = [ref.forward([str(p)] * len(texts), texts).tolist() for p in images]
    ref.model.generation_config.repetition_penalty = 1.0
    unpenalised = [ref.forward([str(p)] * len(texts), texts).tolist() for p in images[:1]]
    entry["model"].update(torch_dtype=torch.bfloat16)
    ref = wrapper_mod.Qwen2VLModel("qwen2-vl-7b", device="cpu")
    bf16 = [ref.forward([str(p)] * len(texts), texts).float().tolist() for p in images]
    write_json(
        out / "scores.json",
        {
            "images": [p.name for p in images],
            "texts": texts,
            "question_template": 'Does this image show "{}"?',
            "answer": "Yes",
            "scores": scores,
            "scores_without_repetition_penalty": unpenalised,
            "scores_bfloat16": bf16,
            "tokenizer_length": len(tokenizer),
            "scored_vocabulary": rows,
            "reference": "t2v_metrics 3.0 Qwen2VLModel.forward, its qwen2-vl-7b entry on the offline hub cache of "
            "tests/fixtures/reference/hub, sdpa attention (flash_attention_2 has no CPU kernel); float32, and as "
            "the entry's bfloat16 (scores_bfloat16)",
            "versions": versions("t2v-metrics", "torch", "transformers", "qwen-vl-utils", "tokenizers"),
        },
    )
    print("qwen2_vl:", np.array(scores), np.array(unpenalised), np.array(bf16))


# -- hub-shaped VLM checkpoints (CLIP-FlanT5, LLaVA-1.5, Qwen2-VL) ---------------------------------------------------
# Each VQAScore family's checkpoint is made the way its real hub repository was made and laid out under the real repo
# id in a Hugging Face cache (checkpoints.hub_cache), so that t2v-metrics runs its own model entries *unchanged*
# (zhiqiulin/clip-flant5-xxl with google/flan-t5-xxl's tokenizer, liuhaotian/llava-v1.5-13b, Qwen/Qwen2-VL-7B-Instruct,
# each tower openai/clip-vit-large-patch14-336) and t2ibench loads them by the same hub ids, offline.
HUB = FIXTURES / "hub"
TOWER = "openai/clip-vit-large-patch14-336"
# texts beyond TEXTS[:4]: characters the T5 sentencepiece model lacks (<unk>), runs of spaces, and literal special
# tokens (for LLaVA "<unk>" is also the pad token, which t2v-metrics masks out of attention wherever it occurs)
EXTRA_TEXTS = [
    'a na\u00efve caf\u00e9 sign that reads "\u20ac5" \U0001f600',
    "a  cat   chasing  a mouse ",
    "a cat <unk> chasing a mouse </s> <pad>",
]
VLM_TEXTS = TEXTS + EXTRA_TEXTS


def padded_vocabulary(n: int) -> int:
    """The next multiple of 128 (Flan-T5 keeps 32,128 rows for its 32,100 tokens; Qwen2-VL 152,064 for 151,657)."""
    return (n + 127) // 128 * 128


def new_revision(repo: str, label: str = "main", main: bool = True) -> Path:
    """An empty folder for one revision of a fixture repository, registered in hub/hub.json."""
    import shutil

    folder = HUB / repo.replace("/", "--") / label
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    index_file = HUB / "hub.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    rev = checkpoints.revision_of(repo, label)
    entry = index.setdefault(repo, {"main": rev, "revisions": {}})
    entry["revisions"][rev] = str(folder.relative_to(HUB))
    if main:
        entry["main"] = rev
    write_json(index_file, index)
    return folder


def refresh_cache() -> Path:
    """The fixture repositories laid out in this process's (offline) hub cache (HF_HUB_CACHE, set by main())."""
    cache = Path(os.environ["HF_HUB_CACHE"])
    checkpoints.hub_cache(HUB, cache)
    return cache


def snapshot(repo: str, label: str = "main") -> Path:
    return Path(
        os.environ["HF_HUB_CACHE"],
        "models--" + repo.replace("/", "--"),
        "snapshots",
        checkpoints.revision_of(repo, label),
    )


def vision_tower() -> None:
    """openai/clip-vit-large-patch14-336, scaled down: a whole ``CLIPModel`` (its vision tower at 336 px with 14 px
    patches, 577 positions; a small text tower) saved by save_pretrained as ``pytorch_model.bin``, with that repo's
    preprocessor_config.json. The text vocabulary is cut to 100 rows to keep the file small (it is never used)."""
    from transformers import CLIPConfig, CLIPModel

    folder = new_revision(TOWER)
    config = CLIPConfig(
        text_config={
            "vocab_size": 100,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
        },
        vision_config={
            "image_size": 336,
            "patch_size": 14,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "hidden_act": "quick_gelu",
        },
        projection_dim=32,
    )
    model = CLIPModel(config)
    checkpoints.seed_module(model, 7)
    model.save_pretrained(folder, safe_serialization=False)
    write_json(folder / "preprocessor_config.json", checkpoints.clip_preprocessor(336))
    refresh_cache()


def bf16_as_shipped(make_scorer, image: Path, text: str) -> str:
    """What the reference does on this CPU as it ships (its bfloat16 cast, no float32 cast): a score or the error."""
    try:
        return f"{float(make_scorer().forward([str(image)], [text])):.6g}"
    except Exception as err:  # noqa: BLE001 - recorded as the finding
        return f"{type(err).__name__}: {err}"


def clip_flant5(images: list[Path]) -> None:
    import torch
    from transformers import AutoTokenizer

    out = FIXTURES / "clip_flant5"
    vision_tower()
    train_t5_tokenizer(new_revision("google/flan-t5-xxl"))
    refresh_cache()
    vocab = len(AutoTokenizer.from_pretrained("google/flan-t5-xxl", use_fast=False))
    model_mod = t2v_module("models.vqascore_models.clip_t5.model.language_model.clip_t5")
    wrapper_mod = t2v_module("models.vqascore_models.clip_t5_model")
    config = model_mod.CLIPT5Config(
        vocab_size=padded_vocabulary(vocab),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        mm_vision_tower=TOWER,
        mm_hidden_size=32,
        mm_projector_type="mlp2x_gelu",
        mm_vision_select_layer=-2,
        mm_vision_select_feature="patch",
        use_mm_proj=True,
        architectures=["CLIPT5ForConditionalGeneration"],
    )
    model = model_mod.CLIPT5ForConditionalGeneration(config)  # builds its tower from TOWER (delay_load=False)
    # the tower was frozen in training: the checkpoint's copy is the tower's own weights
    checkpoints.seed_module(model, 15, {"lm_head.weight": 1.0}, skip=("vision_tower.",))
    model.to(torch.bfloat16)
    # .bin shards, as the repository: save_pretrained keeps every alias of the shared embeddings in a .bin file
    # (shared, encoder/decoder.embed_tokens and CLIPT5ForConditionalGeneration's own embed_tokens); this class cannot
    # be saved as safetensors at all (save_pretrained refuses its untracked embed_tokens alias)
    model.save_pretrained(new_revision("zhiqiulin/clip-flant5-xxl"), safe_serialization=False, max_shard_size="150KB")
    refresh_cache()

    def scorer():
        return wrapper_mod.CLIPT5Model("clip-flant5-xxl", device="cpu", cache_dir=os.environ["HF_HUB_CACHE"])

    as_shipped = bf16_as_shipped(scorer, images[0], TEXTS[0])
    ref = scorer()
    ref.model.to(torch.float32)
    rows = int(ref.model.lm_head.weight.shape[0])
    # t2v_metrics.score.Score.forward: one forward per image over all texts (the image repeated), an M x N table.
    scores = [ref.forward([str(p)] * len(VLM_TEXTS), VLM_TEXTS).tolist() for p in images]
    single = [[ref.forward([str(p)], [t]).item() for t in VLM_TEXTS] for p in images[:1]]
    ids = [
        wrapper_mod.t5_tokenizer_image_token(
            wrapper_mod.format_question(wrapper_mod.default_question_template.format(t), "t5_chat"), ref.tokenizer
        )
        for t in VLM_TEXTS
    ]
    write_json(
        out / "scores.json",
        {
            "images": [p.name for p in images],
            "texts": VLM_TEXTS,
            "question_template": wrapper_mod.default_question_template,
            "answer": wrapper_mod.default_answer_template,
            "scores": scores,
            "scores_one_pair_per_forward": single,
            "input_ids": ids,
            "tokenizer_length": vocab,
            "checkpoint_vocabulary": padded_vocabulary(vocab),
            "scored_vocabulary": rows,
            "cpu_bfloat16_as_shipped": as_shipped,
            "reference": "t2v_metrics 3.0 CLIPT5Model.forward, its clip-flant5-xxl entry unchanged, on the offline hub "
            "cache of tests/fixtures/reference/hub, cast to float32 after loading",
            "versions": versions("t2v-metrics", "torch", "transformers", "sentencepiece"),
        },
    )
    print("clip_flant5:", np.round(np.array(scores), 5).tolist(), "as shipped on CPU:", as_shipped)


def llava(images: list[Path]) -> None:
    import torch
    from transformers import AutoTokenizer

    out = FIXTURES / "llava"
    repo = "liuhaotian/llava-v1.5-13b"
    folder = new_revision(repo)
    train_llama_tokenizer(folder)
    refresh_cache()
    tokenizer = AutoTokenizer.from_pretrained(repo, use_fast=False)
    model_mod = t2v_module("models.vqascore_models.llava.model.language_model.llava_llama")
    wrapper_mod = t2v_module("models.vqascore_models.llava_model")
    mm_utils = t2v_module("models.vqascore_models.mm_utils")
    # liuhaotian/llava-v1.5-13b's config.json, scaled down (a Llama with the mm_* keys of LLaVA-1.5); its vocabulary
    # is the tokenizer's (32000 = 32000): no padding rows
    config = model_mod.LlavaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        mm_vision_tower=TOWER,
        mm_hidden_size=32,
        mm_projector_type="mlp2x_gelu",
        mm_vision_select_layer=-2,
        mm_vision_select_feature="patch",
        mm_use_im_start_end=False,
        mm_use_im_patch_token=False,
        image_aspect_ratio="pad",
        tokenizer_model_max_length=2048,
        tokenizer_padding_side="right",
        use_mm_proj=True,
        architectures=["LlavaLlamaForCausalLM"],
    )
    model = model_mod.LlavaLlamaForCausalLM(config)
    # trained with the tower loaded, so the saved state holds model.vision_tower.vision_tower.* (the tower's weights)
    model.get_model().get_vision_tower().load_model()
    checkpoints.seed_module(model, 21, {"lm_head.weight": 1.0}, skip=("model.vision_tower.",))
    model.to(torch.float16)  # the liuhaotian checkpoints are float16
    model.save_pretrained(folder, safe_serialization=False, max_shard_size="150KB")
    saved = json.loads((folder / "config.json").read_text())
    saved["model_type"] = "llava"  # as liuhaotian's config.json says
    write_json(folder / "config.json", saved)
    refresh_cache()

    def scorer():
        return wrapper_mod.LLaVAModel("llava-v1.5-13b", device="cpu", cache_dir=os.environ["HF_HUB_CACHE"])

    as_shipped = bf16_as_shipped(scorer, images[0], TEXTS[0])
    ref = scorer()
    ref.model.to(torch.float32)
    # load_pretrained_model's .to(bfloat16) also rounds RoPE's inv_freq buffer (as on a GPU, where t2ibench's
    # bfloat16 cast rounds it alike); the float32 comparison restores the exact frequencies
    for module in ref.model.modules():
        if hasattr(module, "original_inv_freq"):
            module.inv_freq = module.original_inv_freq.clone()
    scores = [ref.forward([str(p)] * len(VLM_TEXTS), VLM_TEXTS).tolist() for p in images]
    single = [[ref.forward([str(p)], [t]).item() for t in VLM_TEXTS] for p in images[:1]]
    # the token ids of each prompt as t2v-metrics builds them (-200 is the image), for a readable failure
    questions = [wrapper_mod.format_question(wrapper_mod.default_question_template.format(t)) for t in VLM_TEXTS]
    ids = [mm_utils.tokenizer_image_token(q + wrapper_mod.format_answer("Yes"), ref.tokenizer) for q in questions]
    label_start = [len(mm_utils.tokenizer_image_token(q, ref.tokenizer)) - 1 for q in questions]
    write_json(
        out / "scores.json",
        {
            "images": [p.name for p in images],
            "texts": VLM_TEXTS,
            "question_template": wrapper_mod.default_question_template,
            "answer": wrapper_mod.default_answer_template,
            "scores": scores,
            "scores_one_pair_per_forward": single,
            "input_ids": ids,
            "label_start": label_start,
            "pad_token_id": ref.tokenizer.pad_token_id,
            "scored_vocabulary": int(ref.model.lm_head.weight.shape[0]),
            "cpu_bfloat16_as_shipped": as_shipped,
            "reference": "t2v_metrics 3.0 LLaVAModel.forward, its llava-v1.5-13b entry unchanged, on the offline hub "
            "cache of tests/fixtures/reference/hub, cast to float32 after loading",
            "versions": versions("t2v-metrics", "torch", "transformers", "sentencepiece"),
        },
    )
    print("llava:", np.round(np.array(scores), 5).tolist(), "as shipped on CPU:", as_shipped)


# -- LLaVA-1.6 (ReBind's yes/no role questions) ------------------------------------------------------------------------
# ReBind@19ea3fa answers its role questions with llava-hf/llava-v1.6-vicuna-7b-hf (modeling/utils/llava_utils.py:
# get_model, get_batch_response; eval/eval_utils.py: parse_yes_no). Its chat template, written after the llava-hf
# vicuna templates: "USER: <image>\n{text} ASSISTANT:" (images first, then the texts, each followed by a space).
LLAVA_NEXT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'][0]['text'] }}"
    "{% else %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
ROLE_QUESTIONS = [
    "Is the cat chasing the mouse?",
    "Is the mouse  in front of the cat? Answer yes or no.",
    "Does the image show a horse riding an astronaut?",
]


def rebind_module(rebind: Path, path: str) -> types.ModuleType:
    """One module of a ReBind checkout, imported from its file (its imports: transformers, PIL, tqdm, torch)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rebind_" + Path(path).stem, rebind / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def llava_next(images: list[Path], rebind: Path) -> None:
    import torch
    import transformers as tf

    out = FIXTURES / "llava_next"
    repo = "llava-hf/llava-v1.6-vicuna-7b-hf"
    folder = new_revision(repo)
    train_llama_tokenizer(folder)
    # the llava-hf conversions add <image> and <pad> to the Llama tokenizer (32000, 32001), padded to 32064 rows
    tokenizer = tf.LlamaTokenizerFast.from_pretrained(str(folder), from_slow=True, legacy=False)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    tokenizer.padding_side = "left"
    grid = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
    image_processor = tf.LlavaNextImageProcessor(
        size={"shortest_edge": 336},
        crop_size={"height": 336, "width": 336},
        image_grid_pinpoints=grid,
        image_mean=checkpoints.OPENAI_CLIP_MEAN,
        image_std=checkpoints.OPENAI_CLIP_STD,
        resample=3,
        do_pad=True,
    )
    processor = tf.LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the tower's CLS token, as the llava-hf processor_config.json files say
        chat_template=LLAVA_NEXT_TEMPLATE,
    )
    processor.save_pretrained(str(folder))
    config = tf.LlavaNextConfig(
        text_config={
            "model_type": "llama",
            "vocab_size": (len(tokenizer) + 63) // 64 * 64,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5,
            "pad_token_id": tokenizer.pad_token_id,
            "tie_word_embeddings": False,
        },
        vision_config={
            "model_type": "clip_vision_model",
            "image_size": 336,
            "patch_size": 14,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "hidden_act": "quick_gelu",
            "projection_dim": 32,
        },
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=grid,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = tf.LlavaNextForConditionalGeneration(config)
    checkpoints.seed_module(model, 33, {"lm_head.weight": 4.0})
    # a random model that often says yes or no: the answer words' head rows scaled up (so the replies and their
    # parsing vary with the image and the question)
    answer_ids = [
        i
        for word in ("▁Yes", "▁No", "▁yes", "▁no", "Yes", "No")
        if (i := tokenizer.convert_tokens_to_ids(word)) != tokenizer.unk_token_id
    ]
    with torch.no_grad():
        model.get_output_embeddings().weight[answer_ids] *= 1.7
    model.to(torch.float16)  # the llava-hf checkpoints are float16 safetensors shards
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="150KB")
    refresh_cache()

    llava_utils = rebind_module(rebind, "rebind/modeling/utils/llava_utils.py")
    eval_utils = rebind_module(rebind, "rebind/eval/eval_utils.py")
    # get_model(repo, quantization=True) loads bfloat16, 8-bit (bitsandbytes) and flash_attention_2, none of which runs
    # on a CPU: the same classes from the same repo id, float32 and sdpa; then get_batch_response unchanged
    ref_processor = tf.LlavaNextProcessor.from_pretrained(repo)
    ref_model = tf.LlavaNextForConditionalGeneration.from_pretrained(
        repo, torch_dtype=torch.float32, attn_implementation="sdpa"
    )
    replies = [
        [llava_utils.get_batch_response(ref_model, ref_processor, [str(p)], q)[0] for q in ROLE_QUESTIONS]
        for p in images
    ]
    parsed = [[eval_utils.parse_yes_no(r) for r in row] for row in replies]
    prompt = ref_processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": ROLE_QUESTIONS[0]}, {"type": "image"}]}],
        add_generation_prompt=True,
    )
    write_json(
        out / "replies.json",
        {
            "images": [p.name for p in images],
            "questions": ROLE_QUESTIONS,
            "prompt": prompt,
            "replies": replies,
            "parse_yes_no": parsed,
            "reference": "ReBind@19ea3fa llava_utils.get_batch_response (max_new_tokens 5, split at 'ASSISTANT:') and "
            "eval_utils.parse_yes_no, unchanged, on the llava-hf/llava-v1.6-vicuna-7b-hf entry of the offline hub "
            "cache, loaded float32 with sdpa (get_model's bfloat16, 8-bit and flash_attention_2 need CUDA)",
            "versions": versions("torch", "transformers", "tokenizers", "sentencepiece"),
        },
    )
    print("llava_next:", replies, parsed)


# -- BERTScore ---------------------------------------------------------------------------------------------------------
BERT_CANDIDATES = [
    "a cat is chasing a mouse across the kitchen floor",
    "two dogs",
    "A red cube sits on a blue sphere. The sphere is on a table.",
    "an astronaut on a horse " * 60,
]
BERT_PROMPTS = [
    "a cat chasing a mouse",
    "a red cube on top of a blue sphere",
    "a blue sphere",
    "an astronaut riding a horse",
]


def bertscore(_images: list[Path]) -> None:
    """bert-score 0.3.13's ``BERTScorer`` as DDPO calls it (``use_fast_tokenizer=True``, idf off, no rescaling) on a
    DeBERTa-xlarge-MNLI-shaped checkpoint (``DebertaModel``, 48 layers, GPT-2 byte-level BPE vocabulary), at the
    layer bert-score's ``model2layers`` gives ``microsoft/deberta-xlarge-mnli`` (40)."""
    from bert_score import BERTScorer
    from bert_score.utils import model2layers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import DebertaConfig, DebertaModel, DebertaTokenizer, DebertaTokenizerFast

    out = FIXTURES / "bertscore"
    files = out / "files"
    files.mkdir(parents=True, exist_ok=True)
    corpus = (BERT_CANDIDATES + ["The image contains " + p for p in BERT_PROMPTS]) * 10
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"],
            show_progress=False,
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        bpe.model.save(tmp)
        slow = DebertaTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"))
        slow.save_pretrained(str(files))
        DebertaTokenizerFast.from_pretrained(str(files)).save_pretrained(str(files))
    layers = model2layers["microsoft/deberta-xlarge-mnli"]
    config = DebertaConfig(
        vocab_size=len(slow),
        hidden_size=16,
        num_hidden_layers=48,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        relative_attention=True,
        pos_att_type=["c2p", "p2c"],
        max_relative_positions=-1,
        position_biased_input=False,
        architectures=["DebertaForSequenceClassification"],
    )
    # small residual branches keep 40 random layers from collapsing every token onto one direction
    spec = {
        "seed": 5,
        "gains": {"output.dense.weight": 0.1},
        "config": config.to_dict(),
        "manifest": checkpoints.manifest_of(DebertaModel(config).state_dict()),
        "num_layers": layers,
    }
    refs = ["The image contains " + p for p in BERT_PROMPTS]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "deberta"
        checkpoints.write_folder(folder, spec["config"], spec["manifest"], spec["seed"], spec["gains"])
        for file in files.iterdir():
            (folder / file.name).write_bytes(file.read_bytes())
        scorer = BERTScorer(
            model_type=str(folder),
            num_layers=layers,
            use_fast_tokenizer=True,
            idf=False,
            rescale_with_baseline=False,
            batch_size=64,
        )
        if scorer._tokenizer.model_max_length > 100_000:
            scorer._tokenizer.model_max_length = 512  # as DDPO's server would need (bert_score#205)
        precision, recall, f1 = scorer.score(BERT_CANDIDATES, refs)
    write_json(out / "checkpoint.json", spec)
    write_json(
        out / "scores.json",
        {
            "candidates": BERT_CANDIDATES,
            "references": refs,
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "f1": f1.tolist(),
            "reference": "bert-score BERTScorer(num_layers=40, use_fast_tokenizer=True), idf off",
            "versions": versions("bert-score", "torch", "transformers", "tokenizers"),
        },
    )
    print("bertscore:", recall.tolist())


# -- CLIP (CLIP score, Q16) --------------------------------------------------------------------------------------------
CLIP_TEXTS = [
    "a cat chasing a mouse",
    "an astronaut riding a horse",
    "a red cube on top of a blue sphere",
    "A photo depicts two dogs playing in the snow.",
]


def clip_reference(images: list[Path]) -> None:
    """openai/CLIP as it ships (PyPI ``openai-clip``): ``clip.load`` of a local state dict (``build_model``, its fp16
    ``convert_weights`` and the float cast on CPU), ``_transform`` (Resize 224 bicubic, CenterCrop, Normalize),
    ``encode_image`` / ``encode_text`` of ``clip.tokenize``: the CLIP score of Hessel et al. and T2I-CompBench (100 x
    cos) and, with HEIM's ``SimClassifier`` rule (100 x cos to the two prompt embeddings, argmax), Q16. A ViT-L/14-shaped
    checkpoint (patch 14, 224 px, 768-d projection) kept small (width 128, 2 layers; text width 64, 1 layer)."""
    import clip
    import torch
    from clip.model import CLIP
    from PIL import Image

    out = FIXTURES / "clip"
    layout = CLIP(768, 224, 2, 128, 14, 77, 49408, 64, 1, 1)
    spec = {
        "seed": 11,
        "gains": {"visual.proj": 4.0, "text_projection": 4.0},
        "manifest": checkpoints.manifest_of(layout.state_dict()),
    }
    prompts = checkpoints.tensor_for("q16_prompts", (2, 768), 11)
    fid_images = sorted((FIXTURES / "fid").glob("*/*.png"))
    pictures = images + fid_images
    with tempfile.TemporaryDirectory() as tmp:
        # a TorchScript archive, as the released CLIP files are (clip.load's state-dict branch reads a file that
        # torch.jit.load has already consumed, which fails on current torch)
        path = Path(tmp) / "clip.pt"
        layout.load_state_dict(checkpoints.state_dict(spec["manifest"], spec["seed"], spec["gains"]))
        torch.jit.trace(layout.eval(), (torch.zeros(1, 3, 224, 224), torch.zeros(1, 77, dtype=torch.long))).save(
            str(path)
        )
        model, preprocess = clip.load(str(path), device="cpu", jit=False)
        with torch.no_grad():
            pixels = torch.stack([preprocess(Image.open(p)) for p in pictures])
            image = model.encode_image(pixels).float()
            text = model.encode_text(clip.tokenize(CLIP_TEXTS)).float()
    image_n, text_n = image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    cos = (image_n[: len(images)] @ text_n.T).tolist()
    # HEIM's Q16 (helm q16_toxicity_detector.SimClassifier): 100 x cos to the normalised prompts, argmax = label
    similarity = 100.0 * image_n @ (torch.from_numpy(prompts) / torch.from_numpy(prompts).norm(dim=-1, keepdim=True)).T
    write_json(out / "checkpoint.json", spec)
    write_json(
        out / "scores.json",
        {
            "images": [str(p.relative_to(FIXTURES)) for p in images],
            "texts": CLIP_TEXTS,
            "cos": cos,
            "q16_images": [str(p.relative_to(FIXTURES)) for p in pictures],
            "q16_label": similarity.argmax(-1).tolist(),
            "q16_prob": torch.softmax(similarity, -1)[:, 1].tolist(),
            "reference": "openai-clip clip.load(local state dict, jit=False) + _transform; HEIM Q16 SimClassifier rule",
            "versions": versions("openai-clip", "torch", "torchvision", "pillow"),
        },
    )
    print("clip:", np.round(np.array(cos), 4).tolist(), similarity.argmax(-1).tolist())


# -- FID ---------------------------------------------------------------------------------------------------------------
FID_SETS = {"a": 10, "b": 10}
FID_SIZE = (48, 40)


def make_fid_images() -> dict[str, list[Path]]:
    """Two folders of 10 seeded 48 x 40 images (torch-fidelity batches a folder, so one size per folder)."""
    from PIL import Image

    out = {}
    for k, (name, count) in enumerate(sorted(FID_SETS.items())):
        folder = FIXTURES / "fid" / name
        folder.mkdir(parents=True, exist_ok=True)
        out[name] = []
        for i in range(count):
            rng = np.random.RandomState(1000 * (k + 1) + i)
            coarse = rng.randint(0, 256, size=(3, 3, 3)).astype(np.uint8)
            image = Image.fromarray(coarse).resize(FID_SIZE, Image.BICUBIC)
            noise = rng.randint(-12, 13, size=(FID_SIZE[1], FID_SIZE[0], 3)) + (30 if name == "b" else 0)
            pixels = np.clip(np.asarray(image).astype(int) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:02d}.png")
            out[name].append(folder / f"{i:02d}.png")
    return out


def fid(_images: list[Path]) -> None:
    """torch-fidelity's FeatureExtractorInceptionV3 and ``calculate_metrics``, torchmetrics' FrechetInceptionDistance,
    and clean-fid's ``compute_fid(mode="clean")`` with that network as its feature extractor (clean-fid's own network
    is NVIDIA's TorchScript port of the same graph, a download; its wrapper feeds the float 299 image as (x - 128) / 128,
    which the module below does before torch-fidelity's layers), all on one random state dict."""
    import contextlib

    import torch
    import torch_fidelity
    from cleanfid import fid as cleanfid
    from PIL import Image
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torchmetrics.image.fid import FrechetInceptionDistance

    out = FIXTURES / "fid"
    sets = make_fid_images()

    @contextlib.contextmanager
    def no_weight_loading():  # build the layout once without its download, to read the state-dict names
        original, load = torch.nn.Module.load_state_dict, torch.load
        torch.nn.Module.load_state_dict = lambda self, *a, **k: None
        torch.load = lambda *a, **k: {}
        try:
            yield
        finally:
            torch.nn.Module.load_state_dict, torch.load = original, load

    with no_weight_loading():
        layout = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path="unused")
    spec = {"seed": 7, "gains": {"conv.weight": 1.4}, "manifest": checkpoints.manifest_of(layout.state_dict())}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "inception.pth"
        torch.save(checkpoints.state_dict(spec["manifest"], spec["seed"], spec["gains"]), weights)
        network = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights)
        )

        def uint8(path: Path) -> torch.Tensor:
            return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)

        fidelity_features = {k: [network(uint8(p)[None])[0][0].tolist() for p in v] for k, v in sets.items()}
        fidelity = torch_fidelity.calculate_metrics(
            input1=str(out / "a"),
            input2=str(out / "b"),
            fid=True,
            cuda=False,
            verbose=False,
            feature_extractor_weights_path=str(weights),
            samples_find_deep=False,
        )["frechet_inception_distance"]

        def torchmetrics_value(antialias: bool, float64: bool = False) -> tuple[float, dict]:
            metric = FrechetInceptionDistance(
                feature=2048, feature_extractor_weights_path=str(weights), antialias=antialias
            )
            if float64:  # set_dtype also runs the network in float64 (its `_dtype`)
                metric.set_dtype(torch.float64)
            for k, real in (("a", True), ("b", False)):
                metric.update(torch.stack([uint8(p) for p in sets[k]]), real=real)
            features = {k: metric.inception(torch.stack([uint8(p) for p in v])).tolist() for k, v in sets.items()}
            return float(metric.compute()), features

        tm_tf1, _ = torchmetrics_value(antialias=False)
        tm_default, tm_features = torchmetrics_value(antialias=True)
        tm_default64, _ = torchmetrics_value(antialias=True, float64=True)

        order = [
            "Conv2d_1a_3x3",
            "Conv2d_2a_3x3",
            "Conv2d_2b_3x3",
            "MaxPool_1",
            "Conv2d_3b_1x1",
            "Conv2d_4a_3x3",
            "MaxPool_2",
            "Mixed_5b",
            "Mixed_5c",
            "Mixed_5d",
            "Mixed_6a",
            "Mixed_6b",
            "Mixed_6c",
            "Mixed_6d",
            "Mixed_6e",
            "Mixed_7a",
            "Mixed_7b",
            "Mixed_7c",
            "AvgPool",
        ]

        class CleanFIDInput(torch.nn.Module):  # clean-fid's InceptionV3W.forward on torch-fidelity's layers
            def forward(self, x):
                assert x.shape[2] == 299 and x.shape[3] == 299
                x = (x - 128) / 128
                for name in order:
                    x = getattr(network, name)(x)
                return torch.flatten(x, 1)

        extractor = CleanFIDInput().eval()
        clean_features = {
            k: cleanfid.get_folder_features(
                str(out / k),
                extractor,
                num_workers=0,
                batch_size=4,
                device=torch.device("cpu"),
                mode="clean",
                verbose=False,
            ).tolist()
            for k in sets
        }
        clean = cleanfid.compute_fid(
            str(out / "a"),
            str(out / "b"),
            mode="clean",
            custom_feat_extractor=extractor,
            num_workers=0,
            batch_size=4,
            device=torch.device("cpu"),
            verbose=False,
        )

    def summary(features: dict) -> dict:  # the first 64 of 2048 dimensions and each vector's norm keep the file small
        return {
            k: {"head": np.asarray(v)[:, :64].tolist(), "norm": np.linalg.norm(v, axis=1).tolist()}
            for k, v in features.items()
        }

    write_json(out / "checkpoint.json", spec)
    write_json(
        out / "scores.json",
        {
            "sets": {k: [p.name for p in v] for k, v in sets.items()},
            "torch_fidelity": {
                "features": summary(fidelity_features),
                "fid_torch_fidelity": fidelity,
                "fid_torchmetrics_antialias_false": tm_tf1,
            },
            "torchmetrics": {
                "features": summary(tm_features),
                "fid_torchmetrics": tm_default,
                "fid_torchmetrics_float64_network": tm_default64,
            },
            "clean": {"features": summary(clean_features), "fid_clean_fid": float(clean)},
            "reference": "torch-fidelity FeatureExtractorInceptionV3 + calculate_metrics; torchmetrics "
            "FrechetInceptionDistance (float64); clean-fid get_folder_features / compute_fid mode clean",
            "versions": versions("torch-fidelity", "clean-fid", "torchmetrics", "torch", "scipy", "pillow"),
        },
    )
    print("fid:", fidelity, tm_tf1, tm_default, tm_default64, float(clean))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="clip_flant5,llava,qwen2_vl,llava_next,bertscore,fid,clip")
    parser.add_argument(
        "--rebind", type=Path, help="a checkout of sinamalakouti/ReBind@19ea3fa (for llava_next: its LLaVA-1.6 QA code)"
    )
    args = parser.parse_args()
    if "llava_next" in args.only.split(",") and not args.rebind:
        parser.error("llava_next runs ReBind's own QA code: give --rebind <checkout of sinamalakouti/ReBind@19ea3fa>")
    # the VLM families load their checkpoints by hub id from an offline cache of tests/fixtures/reference/hub; set
    # before transformers is imported (4.49 reads its cache folder at import)
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_CACHE=tempfile.mkdtemp(prefix="refhub-"))
    if (HUB / "hub.json").exists():
        refresh_cache()
    images = make_images()
    jobs = {
        "clip_flant5": clip_flant5,
        "llava": llava,
        "qwen2_vl": qwen2_vl,
        "llava_next": lambda images: llava_next(images, args.rebind),
        "bertscore": bertscore,
        "fid": fid,
        "clip": clip_reference,
    }
    for name in args.only.split(","):
        jobs[name](images)


if __name__ == "__main__":
    main()
