import pytest
import torch
from safetensors.torch import load_file

from t2ibench.clip_tokenizer import TINY_WORDS, build_real_clip_tokenizer, build_tiny_clip_tokenizer
from t2ibench.errors import T2IBenchError
from t2ibench.tiny_models import build_tiny_sd_pipeline


def test_real_clip_tokenizer_from_shared_bpe(shared_dir):
    tok = build_real_clip_tokenizer(shared_dir / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz")
    # The reference encoding of ../shared/clip-bpe/SOURCE.md and a sub-word case from the SynGen parity notes.
    assert tok("a yellow flamingo and a pink sunflower").input_ids == [
        49406,
        320,
        4481,
        30323,
        537,
        320,
        3360,
        21559,
        49407,
    ]
    assert len(tok.tokenize("hippopotamus")) == 3
    assert len(tok.get_vocab()) == 49408 and tok.model_max_length == 77


def test_real_tokenizer_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(T2IBenchError, match="tokenizer=tiny"):
        build_real_clip_tokenizer(tmp_path / "missing.txt.gz")


def test_tiny_tokenizer_is_clip_style():
    tok = build_tiny_clip_tokenizer()
    assert tok.bos_token_id == 49406 and tok.eos_token_id == 49407 and tok.pad_token_id == 49407
    assert all(len(tok(w).input_ids) == 3 for w in TINY_WORDS)  # BOS, one piece, EOS
    ids = tok("a zyzzyva", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == 49406 and max(ids) < 49408
    assert tok.decode(tok("a furry cat!").input_ids, skip_special_tokens=True) == "a furry cat !"


def test_tiny_pipeline_has_the_parity_architecture(shared_dir):
    pipe = build_tiny_sd_pipeline(seed=0)
    parity = shared_dir / "parity" / "tiny-sd"
    for component, filename in (
        ("unet", "diffusion_pytorch_model"),
        ("vae", "diffusion_pytorch_model"),
        ("text_encoder", "model"),
    ):
        ref = load_file(parity / component / f"{filename}.safetensors")
        mine = getattr(pipe, component).state_dict()
        assert {k: tuple(v.shape) for k, v in ref.items()} == {k: tuple(v.shape) for k, v in mine.items() if k in ref}
        assert set(ref) <= set(mine)
    assert pipe.text_encoder.config.vocab_size == 49408 and pipe.text_encoder.config.max_position_embeddings == 77
    # Cross-attention query maps at 256x256: 16x16 in exactly 5 layers x 8 heads, as in SD-1.x.
    sizes = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out, name=name: sizes.__setitem__(name, args[0].shape[1]))
        for name, m in pipe.unet.named_modules()
        if name.endswith("attn2")
    ]
    with torch.no_grad():
        pipe.unet(torch.zeros(1, 4, 32, 32), 10, encoder_hidden_states=torch.zeros(1, 77, 32))
    for h in hooks:
        h.remove()
    assert sorted(n for n, s in sizes.items() if s == 256) == [
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2",
        "down_blocks.1.attentions.1.transformer_blocks.0.attn2",
        "up_blocks.1.attentions.0.transformer_blocks.0.attn2",
        "up_blocks.1.attentions.1.transformer_blocks.0.attn2",
        "up_blocks.1.attentions.2.transformer_blocks.0.attn2",
    ]
    assert pipe.unet.config.attention_head_dim == 8


def test_tiny_pipeline_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_tiny_sd_pipeline(seed=0)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = build_tiny_sd_pipeline(seed=0)
    c = build_tiny_sd_pipeline(seed=1)
    wa, wb, wc = (p.unet.conv_in.weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
