"""CLIP BPE tokenizers built offline, for the tiny models and for tests where token indices matter.

* :func:`build_real_clip_tokenizer` rebuilds the tokenizer of ``openai/clip-vit-large-patch14`` (SD-1.x,
  SD-2.x, SDXL) from OpenAI's merge list ``bpe_simple_vocab_16e6.txt.gz`` (openai/CLIP@d05afc4): vocab = the
  256 byte symbols, the same with ``</w>``, one entry per merge (lines 2..48895 of the file), then
  ``<|startoftext|>`` = 49406 and ``<|endoftext|>`` = 49407. The file is not shipped with t2ibench; pass
  its path, set ``T2IBENCH_CLIP_BPE``, or keep it at ``../shared/clip-bpe/`` beside the checkout.
* :func:`build_tiny_clip_tokenizer` is self-contained: the same byte-level scheme with a small merge list
  that spells a fixed English word list, and the special tokens at the real ids 49406/49407, so that the
  default run needs no file at all. Its ids are not CLIP's; use the real tokenizer where indices matter.

Both are built as ``transformers.CLIPTokenizer`` through ``from_pretrained`` on a temporary folder, which
works across transformers 4.x and 5.x.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from t2ibench.errors import T2IBenchError

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
BOS_ID, EOS_ID = 49406, 49407
VOCAB_SIZE = 49408
N_MERGES = 49152 - 256 - 2  # merges used by CLIP (48894)

# Words the tiny tokenizer spells as single tokens: those of the built-in tiny prompts plus common words
# of the benchmarks' prompt styles. Anything else falls back to byte-level pieces.
TINY_WORDS = """
a an the of and with on in at to one two three photo photorealistic image picture painting drawing portrait
face person man woman people child boy girl doctor nurse teacher engineer chef pilot cat dog mouse horse bird
frog bear elephant zebra giraffe lion tiger rabbit fox monkey flamingo car bus train bike bicycle boat plane
truck tracks bench chair table couch bed backpack umbrella clock apple banana cake pizza flower sunflower tree
street city field beach mountain sky sea road trail bin trash red blue green yellow pink purple orange black
white brown gray grey old young small large big rusty furry wooden metal glass golden peaceful stormy dramatic
chasing feeding riding throwing carrying holding sitting standing walking running eating looking food ball
stops next near under over behind front top side down up by from
""".split()


def bytes_to_unicode() -> dict[int, str]:
    """The reversible byte -> printable-unicode map of GPT-2/CLIP byte-level BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def _byte_vocab() -> list[str]:
    symbols = list(bytes_to_unicode().values())
    return symbols + [s + "</w>" for s in symbols]


def _tokenizer_from(vocab: dict[str, int], merges: list[str]) -> CLIPTokenizer:
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="t2ibench-tok-") as folder:
        Path(folder, "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        Path(folder, "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        config = {"model_max_length": 77, "bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}
        Path(folder, "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder)


def default_bpe_path() -> Path | None:
    """``$T2IBENCH_CLIP_BPE`` if set, else ``../shared/clip-bpe/bpe_simple_vocab_16e6.txt.gz`` if present."""
    env = os.environ.get("T2IBENCH_CLIP_BPE")
    if env:
        return Path(env)
    for base in (Path.cwd(), *Path.cwd().parents[:2]):
        candidate = base / "shared" / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz"
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=4)
def build_real_clip_tokenizer(bpe_path: str | Path | None = None) -> CLIPTokenizer:
    """The real CLIP tokenizer from ``bpe_simple_vocab_16e6.txt.gz`` (see the module docstring)."""
    path = Path(bpe_path) if bpe_path else default_bpe_path()
    if path is None or not path.is_file():
        raise T2IBenchError(
            f"CLIP BPE merge file not found ({path or 'no path given'}); pass model.tokenizer_bpe_path=..., "
            "set T2IBENCH_CLIP_BPE, or use model.tokenizer=tiny"
        )
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    merges = lines[1 : N_MERGES + 1]
    if len(merges) != N_MERGES or any(len(m.split()) != 2 for m in merges):
        raise T2IBenchError(f"{path}: not a CLIP BPE merge list (expected {N_MERGES} merges after a header line)")
    vocab_list = _byte_vocab() + ["".join(m.split()) for m in merges] + [BOS, EOS]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    if len(vocab) != VOCAB_SIZE:
        raise T2IBenchError(f"{path}: built a vocabulary of {len(vocab)} entries, expected {VOCAB_SIZE}")
    return _tokenizer_from(vocab, merges)


def _word_merges(words: list[str]) -> list[str]:
    table = bytes_to_unicode()
    merges: dict[str, None] = {}
    for word in words:
        symbols = [table[b] for b in word.encode("utf-8")]
        symbols[-1] += "</w>"
        current = symbols[0]
        for symbol in symbols[1:]:
            merges.setdefault(f"{current} {symbol}")
            current += symbol
    return list(merges)


@functools.lru_cache(maxsize=2)
def build_tiny_clip_tokenizer(words: tuple[str, ...] = tuple(TINY_WORDS)) -> CLIPTokenizer:
    """A self-contained CLIP-style byte-level BPE tokenizer (see the module docstring).

    Merges spell each word left to right; where merges of other words split a word, merges joining its
    pieces are appended until every word of ``words`` is one token.
    """
    clean = [w for w in dict.fromkeys(w.lower() for w in words) if re.fullmatch(r"[a-z]+", w)]
    merges = _word_merges(clean)
    for _ in range(10):
        tokenizer = _tiny_tokenizer(merges)
        split = [tokenizer.tokenize(w) for w in clean]
        split = [pieces for pieces in split if len(pieces) > 1]
        if not split:
            return tokenizer
        for pieces in split:
            current = pieces[0]
            for piece in pieces[1:]:
                if f"{current} {piece}" not in merges:
                    merges.append(f"{current} {piece}")
                current += piece
    return tokenizer


def _tiny_tokenizer(merges: list[str]) -> CLIPTokenizer:
    vocab_list = _byte_vocab() + ["".join(m.split()) for m in merges]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(vocab_list))}
    vocab[BOS], vocab[EOS] = BOS_ID, EOS_ID
    return _tokenizer_from(vocab, merges)
