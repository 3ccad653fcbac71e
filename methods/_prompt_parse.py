"""SynGen's syntactic analysis: which CLIP positions form (modifier..., noun) groups.

Re-implements, from the description in ``../shared/reference/methods.md`` section 3 and checked against the
parity fixtures, ``compute_loss.py`` and ``SynGenDiffusionPipeline._extract_attribution_indices`` /
``_align_indices`` of RoyiRa/Linguistic-Binding-in-Diffusion-Models@50b8eab175dc9b31ce9c7c4b2eba28c817fc440e:

* modifier labels ``amod, nmod, compound, npadvmod, advmod, acomp``; traversal below a modifier also
  follows ``conj`` children;
* extractor 1: each NOUN/PROPN that is not itself a modifier, with its modifier children and (depth first,
  by a stack) their modifier/conj descendants, noun last;
* extractor 2 (copulas, "a dog that is red"): each AUX that is not a modifier, its children that are
  modifiers or nouns (not AUX/VERB), kept when there are at least 2, plus modifier/conj descendants (not
  AUX); the noun is *not* moved last, as in the official code;
* extractor 3: like extractor 1 with ``relcl`` added, AUX/VERB tokens skipped but traversed. Official quirk:
  its ``return`` sits inside the loop, so only the first NOUN/PROPN that passes the filter is processed
  (``first_noun_only_quirk``, default True = official); with no such noun the official function returns
  None and the pipeline crashes, here it returns no group;
* optional extractor 4 (``include_entities``): every noun alone;
* each spaCy token is aligned to CLIP word pieces by lower-case match with ``</w>`` stripped; a word split
  into several pieces is matched by concatenating consecutive pieces; an index already used by an earlier
  group is not used again (repeated words map to their next occurrence);
* the groups of all extractors are merged by ``unify_lists`` (groups sharing an index are merged, first
  group's order kept).

A group is a list whose items are CLIP positions (int) or lists of positions (a multi-piece word); the
official convention takes its **last** item as the noun.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from t2ibench.api import Requirements
from t2ibench.backbones import parser as parser_backbone
from t2ibench.errors import T2IBenchError

MODIFIERS = ("amod", "nmod", "compound", "npadvmod", "advmod", "acomp")
START, END = "<|startoftext|>", "<|endoftext|>"

Group = list[Any]  # items: int or list[int]


def word_pieces(tokenizer: Any, text: str) -> dict[int, str]:
    """CLIP position -> word piece (``</w>`` kept), BOS and EOS included, of the tokens the text encoder sees: a
    prompt longer than the tokenizer's window (77 for CLIP) is truncated as the pipelines truncate it, so words cut
    off are not aligned (the official code indexes past the attention maps for such prompts and fails). The runner
    warns once per cell about the words cut."""
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    window = {"truncation": True, "max_length": limit} if 0 < limit < 100_000 else {}
    ids = tokenizer(text, **window).input_ids
    return dict(enumerate(tokenizer.convert_ids_to_tokens(ids)))


def attention_map_index_to_wordpiece(tokenizer: Any, text: str) -> dict[int, str]:
    """The prompt positions without BOS/EOS (official ``get_attention_map_index_to_wordpiece``)."""
    pieces = word_pieces(tokenizer, text)
    return {i: pieces[i].replace("</w>", "") for i in list(pieces)[1:-1]}


def _noun_groups(doc: Iterable[Any], labels: Sequence[str], skip_verbs: bool, first_noun_only: bool) -> list[list[Any]]:
    """Each NOUN/PROPN not labelled as a modifier, with its ``labels`` children and their ``labels``/conj
    descendants (depth first by a stack), noun last; AUX/VERB tokens are traversed but not kept when
    ``skip_verbs``; with ``first_noun_only`` the walk stops after the first such noun."""
    groups = []
    for word in doc:
        if word.pos_ not in ("NOUN", "PROPN") or word.dep_ in labels:
            continue
        group, stack = [], []
        for child in word.children:
            if child.dep_ in labels:
                if not (skip_verbs and child.pos_ in ("AUX", "VERB")):
                    group.append(child)
                stack.extend(child.children)
        while stack:
            node = stack.pop()
            if node.dep_ in labels or node.dep_ == "conj":
                if not (skip_verbs and node.pos_ in ("AUX", "VERB")):
                    group.append(node)
                stack.extend(node.children)
        if group:
            groups.append([*group, word])
        if first_noun_only:
            return groups
    return groups


def extract_modifier_groups(doc: Iterable[Any]) -> list[list[Any]]:
    """Extractor 1 (spaCy tokens, noun last)."""
    return _noun_groups(doc, MODIFIERS, skip_verbs=False, first_noun_only=False)


def extract_copula_groups(doc: Iterable[Any]) -> list[list[Any]]:
    """Extractor 2: modifier and noun children of an AUX ("a dog that is red")."""
    groups = []
    for word in doc:
        if word.pos_ != "AUX" or word.dep_ in MODIFIERS:
            continue
        group, stack = [], []
        for child in word.children:
            if child.dep_ in MODIFIERS or child.pos_ in ("NOUN", "PROPN"):
                if child.pos_ not in ("AUX", "VERB"):
                    group.append(child)
                stack.extend(child.children)
        if len(group) < 2:
            continue
        while stack:
            node = stack.pop()
            if node.dep_ in MODIFIERS or node.dep_ == "conj":
                if node.pos_ != "AUX":
                    group.append(node)
                stack.extend(node.children)
        groups.append(group)
    return groups


def extract_verb_groups(doc: Iterable[Any], first_noun_only_quirk: bool = True) -> list[list[Any]]:
    """Extractor 3: modifiers reached through verbs/relative clauses (official early-return quirk by default)."""
    return _noun_groups(doc, (*MODIFIERS, "relcl"), skip_verbs=True, first_noun_only=first_noun_only_quirk)


def extract_entities(doc: Iterable[Any]) -> list[list[Any]]:
    """Extractor 4: every noun alone."""
    return [[word] for word in doc if word.pos_ in ("NOUN", "PROPN")]


def _align_multipiece(pieces: dict[int, str], start: int, word: str) -> list[int]:
    indices = [start]
    current = pieces[start].replace("</w>", "")
    for index in range(start + 1, len(pieces)):
        if current.lower() == word.lower():
            break
        following = pieces[index].replace("</w>", "")
        if word.lower().startswith(current.lower() + following.lower()) and following.lower() != word.lower():
            current += following
            indices.append(index)
        else:
            return []
    return indices


def align_groups(pieces: dict[int, str], groups: Sequence[Sequence[Any]]) -> list[Group]:
    """Map groups of spaCy tokens to CLIP positions (official ``_align_indices``)."""
    aligned: list[Group] = []
    used: set[int] = set()
    for group in groups:
        current: Group = []
        for member in group:
            text = member.text.lower()
            for index, piece in pieces.items():
                if piece in (START, END):
                    continue
                piece = piece.replace("</w>", "").lower()
                if text == piece:
                    if index not in current and index not in used:
                        current.append(index)
                        break
                elif text.startswith(piece) and piece != text:
                    multi = _align_multipiece(pieces, index, member.text)
                    if multi and multi not in current and all(i not in used for i in multi):
                        current.append(multi)
                        break
        for item in current:
            used.update(item if isinstance(item, list) else [item])
        if current:
            aligned.append(current)
    return aligned


class _Word:
    """A stand-in for a spaCy token: only ``text`` is read by :func:`align_groups`."""

    def __init__(self, text: str):
        self.text = text


def first_word_piece(tokenizer: Any, text: str, word: str) -> int | None:
    """CLIP position (BOS = 0) of the first word piece of ``word`` in ``text``, or None if it is not there."""
    aligned = align_groups(word_pieces(tokenizer, text), [[_Word(word)]])
    if not aligned:
        return None
    item = aligned[0][0]
    return item[0] if isinstance(item, list) else item


def first_piece(tokenizer: Any, text: str, word: str) -> int:
    """CLIP position of the first word piece of ``word`` in ``text``; an error when it is not there."""
    index = first_word_piece(tokenizer, text, word)
    if index is None:
        raise T2IBenchError(f"{word!r} is not a word of {text!r}")
    return index


def flatten(items: Iterable[Any]) -> list[int]:
    out: list[int] = []
    for item in items:
        out.extend(flatten(item) if isinstance(item, list) else [item])
    return out


def unify_lists(lists_of_groups: Sequence[Sequence[Group]]) -> list[Group]:
    """Merge groups that share a position until none do (official ``unify_lists``)."""
    pending: list[Group] = [list(g) for groups in lists_of_groups for g in groups]
    changed = True
    while changed:
        changed = False
        merged: list[Group] = []
        while pending:
            first = pending.pop(0)
            for index, other in enumerate(pending):
                if set(flatten(first)) & set(flatten(other)):
                    pending[index] = first + [item for item in other if item not in first]
                    changed = True
                    break
            else:
                merged.append(first)
        pending = merged
    return pending


def syngen_groups(
    doc: Any, tokenizer: Any, text: str, include_entities: bool = False, first_noun_only_quirk: bool = True
) -> list[Group]:
    """The merged (modifier..., noun) groups of a parsed prompt, as CLIP positions."""
    pieces = word_pieces(tokenizer, text)
    found = []
    for groups in (
        extract_modifier_groups(doc),
        extract_copula_groups(doc),
        extract_verb_groups(doc, first_noun_only_quirk),
    ):
        aligned = align_groups(pieces, groups)
        if aligned:
            found.append(aligned)
    if include_entities:
        found.append(align_groups(pieces, extract_entities(doc)))
    return unify_lists(found)


def doc_from_parse(parse: dict[str, Any]) -> Any:
    """A spaCy ``Doc`` from a recorded parse: ``words``, ``pos``, ``dep``, ``head`` (absolute token indices)."""
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

    words = list(parse["words"])
    spaces = parse.get("spaces") or [True] * (len(words) - 1) + [False]
    return Doc(
        Vocab(), words=words, spaces=spaces, pos=list(parse["pos"]), deps=list(parse["dep"]), heads=list(parse["head"])
    )


def parser_requirements(name: str | None) -> Requirements:
    """What ``t2ibench-fetch`` should say about a method's spaCy parser (a pip package or ``spacy download``)."""
    needs = Requirements()
    if name:
        needs.notes.append(f"the spaCy parser {name}: {parser_backbone.install_hint(name)}")
    return needs


def parse_text(parser: str, text: str) -> Any:
    """``text`` parsed by the spaCy pipeline ``parser``."""
    return parser_backbone.load(parser)(text)
