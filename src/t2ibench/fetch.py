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
import itertools
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2ibench.errors import T2IBenchError
from t2ibench.hashing import file_sha256

log = logging.getLogger(__name__)

PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "tokenizer*", "merges.txt", "vocab*"]


def _compose(overrides: Sequence[str]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from t2ibench.config_compose import config_composer

    with config_composer() as compose:
        cfg = compose(overrides, with_hydra=True)
        sweep = OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=False) if cfg.hydra.sweeper.params else {}
        configs = []
        for combo in _product(sweep or {}):  # every cell of the experiment's sweep
            extra = [f"{k}={v}" for k, v in combo.items()]
            one = compose([*overrides, *extra])
            configs.append(OmegaConf.to_container(one, resolve=True))
    return {"configs": configs}


def _evaluator_names(cfg: Mapping[str, Any]) -> list[str]:
    names = list(cfg.get("evaluators") or [])
    for more in (cfg.get("evaluators_by_benchmark") or {}).values():
        names += list(more)
    return list(dict.fromkeys(names))


def needed_weights(overrides: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """((hub id, revision) pairs, notes on other downloads) for the composed experiment ``overrides``: the model of
    every cell, and what each cell's method and evaluators declare (``required_weights``), found by name in the
    registries; the benchmarks' data files are noted."""
    from t2ibench.api import BENCHMARKS, EVALUATORS, METHODS, Requirements
    from t2ibench.plan import resolve_generation

    needs = Requirements()
    for cfg in _compose(overrides)["configs"]:
        model = cfg["model"]
        if model.get("source") == "hub":
            needs.add_weight(model.get("id"), model.get("revision"))
        for name in _evaluator_names(cfg):
            needs.extend(EVALUATORS.get(name)((cfg.get("evaluator") or {}).get(name) or {}).required_weights())
        generation = resolve_generation(cfg.get("generation") or {}, model.get("generation_defaults"))
        needs.extend(METHODS.get(cfg["method"]["name"])(cfg["method"], generation).required_weights())
        if getattr(BENCHMARKS.get(cfg["benchmark"]["name"]), "data_files", ()):
            needs.notes.append(f"benchmark {cfg['benchmark']['name']}: its prompt files (t2ibench-data fetch)")
    return list(dict.fromkeys(needs.weights)), list(dict.fromkeys(needs.notes))


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
        if file_sha256(path) != expected:
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
