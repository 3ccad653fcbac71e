"""Fetch and verify every model weight an experiment needs, ahead of time (cluster nodes without internet).

    t2ibench-fetch experiment=rebind_role_collapse            # download (hub id @ revision) and verify
    t2ibench-fetch experiment=rebind_role_collapse --check    # offline: is everything in the local hub cache?
    t2ibench-fetch experiment=respodiff_gender --list         # what would be fetched

The weights are those of every model in the experiment's sweep (``hydra.sweeper.params.model``, else its model)
and of every evaluator it runs (per benchmark too), including the VQAScore family's checkpoint and tokenizer, the
BERTScore captioner and BERT model, the CLIP backbones. Only configuration files, tokenizers and ``*.safetensors``
are downloaded (never pickled weights). After a download each LFS file's sha256 is compared with the hub's record
for that revision. Other downloads (datasets: ``t2ibench-data fetch``; torch-fidelity's Inception weights; the
spaCy parser, a pip package) are named in the listing.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2ibench.errors import T2IBenchError

log = logging.getLogger(__name__)

PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "tokenizer*", "merges.txt", "vocab*"]
# evaluator config keys that name a hub repository, and the key of its revision
WEIGHT_KEYS = {
    "backbone": "revision",
    "model": "revision",
    "tokenizer": None,
    "caption_model": "caption_revision",
    "caption_tokenizer": None,
    "bert_model": None,
}


def _is_hub_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value.count("/") == 1
        and not value.startswith((".", "/", "~"))
        and not Path(value).exists()
    )


def _compose(overrides: Sequence[str]) -> dict[str, Any]:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="t2ibench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
        sweep = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=False) if cfg.hydra.sweeper.params else {}
        configs = []
        for combo in _product(sweep or {}):  # every cell of the experiment's sweep
            extra = [f"{k}={v}" for k, v in combo.items()]
            one = compose(config_name="config", overrides=[*overrides, *extra])
            configs.append(OmegaConf.to_container(one, resolve=True))
    return {"configs": configs}


def _evaluator_names(cfg: Mapping[str, Any]) -> list[str]:
    names = list(cfg.get("evaluators") or [])
    for more in (cfg.get("evaluators_by_benchmark") or {}).values():
        names += list(more)
    return list(dict.fromkeys(names))


def needed_weights(overrides: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """((hub id, revision) pairs, notes on other downloads) for the composed experiment ``overrides``."""
    from t2ibench.evaluators._chat_vlm import FAMILIES

    weights: list[tuple[str, str]] = []
    notes: list[str] = []
    for cfg in _compose(overrides)["configs"]:
        model = cfg["model"]
        if model.get("source") == "hub" and model.get("id"):
            weights.append((model["id"], model.get("revision") or "main"))
        for name in _evaluator_names(cfg):
            ecfg = dict((cfg.get("evaluator") or {}).get(name) or {})
            sections = [ecfg] + [
                dict(v)
                for k, v in ecfg.items()
                if isinstance(v, Mapping) and (k != "qa" or ecfg.get("role_questions") == "yes_no")
            ]  # role_bias: vqa, and qa when the role questions are asked of a yes/no VLM
            for section in sections:
                if "family" in section and section.get("model") is None:  # VQA configs: the family's checkpoint
                    section["model"] = FAMILIES[section["family"] or "clip-flant5"].hub_default
                family = section.get("family") or section.get("captioner")
                for key, revision_key in WEIGHT_KEYS.items():
                    if key in ("tokenizer", "caption_tokenizer") and family not in (None, "clip-flant5"):
                        continue  # the T5 tokenizer is CLIP-FlanT5's only
                    value = section.get(key)
                    if _is_hub_id(value):
                        weights.append((value, str(section.get(revision_key) or "main") if revision_key else "main"))
            if name == "fid" and ecfg.get("feature_extractor", "inception") == "inception":
                notes.append("fid: torch-fidelity's Inception weights (the fid extra downloads them from GitHub)")
            if name == "i2p_safety":
                notes.append(
                    "i2p_safety: the Q16 prompt embeddings (evaluator.i2p_safety.q16_prompts) and NudeNet (pip)"
                )
        if cfg["method"].get("parser"):
            notes.append(f"{cfg['method']['name']}: the spaCy parser {cfg['method']['parser']} (a pip package)")
        notes.append(f"benchmark {cfg['benchmark']['name']}: its prompt files (t2ibench-data fetch)")
    return list(dict.fromkeys(weights)), list(dict.fromkeys(notes))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(repo: str, revision: str, folder: Path) -> int:
    """Compare each downloaded LFS file's sha256 with the hub's record; returns how many were checked."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    checked = 0
    for sibling in info.siblings or []:
        path = folder / sibling.rfilename
        lfs = getattr(sibling, "lfs", None)
        if lfs is None or not path.is_file():
            continue
        expected = lfs.sha256 if hasattr(lfs, "sha256") else lfs["sha256"]
        if _sha256(path) != expected:
            raise T2IBenchError(
                f"{repo}@{revision}: {sibling.rfilename} does not match the hub's sha256; delete it and fetch again"
            )
        checked += 1
    return checked


def fetch(repo: str, revision: str, check_only: bool = False) -> str:
    """Download (or, with ``check_only``, look up offline) one repository; returns its local folder."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo, revision=revision, allow_patterns=PATTERNS, local_files_only=check_only)
    except Exception as err:  # noqa: BLE001 - hub errors have many types; all mean "not available"
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise T2IBenchError(f"{repo}@{revision}: {'not in the local cache' if check_only else first}") from None
    if not check_only:
        checked = verify(repo, revision, Path(folder))
        log.info("%s@%s: %s (%d files sha256-checked)", repo, revision, folder, checked)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="t2ibench-fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. experiment=rebind_role_collapse")
    parser.add_argument("--check", action="store_true", help="offline: report what is missing from the cache")
    parser.add_argument("--list", action="store_true", help="only list what would be fetched")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        from t2ibench.cli import check_overrides

        check_overrides(list(args.overrides))
        weights, notes = needed_weights(args.overrides)
    except T2IBenchError as err:
        print(f"t2ibench-fetch: error: {err}", file=sys.stderr)
        return 2
    if args.list:
        for repo, revision in weights:
            print(f"{repo}@{revision}")
        for note in notes:
            print(f"# also: {note}")
        return 0
    missing = []
    for repo, revision in weights:
        try:
            fetch(repo, revision, check_only=args.check)
            if args.check:
                print(f"ok       {repo}@{revision}")
        except T2IBenchError as err:
            missing.append(str(err))
            print(f"missing  {err}")
    for note in notes:
        print(f"# also: {note}")
    if missing:
        print(f"t2ibench-fetch: {len(missing)} of {len(weights)} weights unavailable", file=sys.stderr)
        return 1
    print(f"t2ibench-fetch: all {len(weights)} weights {'cached' if args.check else 'fetched and verified'}")
    return 0


def _product(sweep: Mapping[str, Any]) -> list[dict[str, str]]:
    keys = list(sweep)
    values = [[v.strip() for v in str(sweep[k]).split(",")] for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


if __name__ == "__main__":
    sys.exit(main())
