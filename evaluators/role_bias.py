"""Role bias beta on RoleBench (Malakouti & Kovashka, NeurIPS 2025; ReBind@19ea3fa ``rebind/eval/eval.py``,
``eval/evaluators/VQAScore_evaluator.py``; ``../shared/reference/evaluators.md`` §2.2-2.3).

Each image of a composition c is scored against c and against its reverse c_rev with VQAScore (the ``vqascore``
evaluator's backend and template, configured under ``vqa``), on the records' bare phrases ``vqa_text`` /
``vqa_text_reverse``:  ITA(I, x) = VQAScore(I, text(x));  M = mean ITA(I, c);  U = mean ITA(I, c_rev);
beta = U - M (the paper's sign: beta > 0 means the images show the reverse, usually frequent, composition; the
official code stores M - U as "delta").
Role questions (t2ibench's frozen set in the records' ``questions`` / ``questions_reverse``): with VQAScore
(``role_questions: statements``, default) the parallel **statements** are scored (soft scores); with a yes/no VLM
(``role_questions: yes_no``; the VLM under ``qa``, by default ReBind's: LLaVA-1.6, ``llava-hf/llava-v1.6-vicuna-7b-hf``
through :mod:`t2ibench.backbones.llava_next`, greedy, 5 new tokens, as ``get_batch_response``; any family of
:mod:`t2ibench.backbones.chat_vlm` can answer instead) the **questions** are asked and a reply counts as yes by
``qa.answer_rule``: ``contains`` (ReBind's ``parse_yes_no``: "yes" anywhere in the lower-cased reply, so "eyes" and
"No, yes" count) or ``starts_with`` (the reply starts with "yes", leading spaces and quotes ignored); category scores
are accuracies. ReBind loads its LLaVA-1.6 8-bit (bitsandbytes) with flash attention on a GPU: t2ibench does not
quantise (bfloat16 on CUDA, float32 on a CPU). A category's score is the mean over its statements (or answers); the total is
sum_cat w_cat score_cat / sum_cat w_cat floored at 0.001; M uses the composition's statements, U its reverse's, on the
same images; beta = U - M per category.

Per-image rows: ``ita_M``, ``ita_U`` and ``<category>_M``, ``<category>_U`` for every category plus ``total_M``, ``total_U``.
Table cells (the paper's layout, flattened): for each of ``frequent`` and ``rare`` and for VQAScore and each category,
M, U and beta, each the macro mean over the compositions of that type (mean per composition first; equal to the
micro mean when every composition has the same number of images), e.g. ``rare.vqascore.beta``, ``frequent.spatial.M``.
Per composition and per relation values are in the per-image rows (group by ``prompt_id``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from t2ibench.api import EVALUATORS, Evaluator, Requirements
from t2ibench.api.config import as_dict, keys_with, option, stand_in
from t2ibench.api.evaluator import EvaluatorConfig
from t2ibench.backbones import vqa as vqa_backbone
from t2ibench.backbones.vqa import VQAConfig, resolve_family, resolved_values, vqa_requirements
from t2ibench.errors import T2IBenchError
from t2ibench.evaluators._vqa_cache import vqa_scores
from t2ibench.run_store import RunStore
from t2ibench.stats import Cell, MetricSpec, mean_ci

CATEGORIES = ("detection", "spatial", "orientation", "pose", "facial_expression")
FLOOR = 0.001


ANSWER_RULES = ("contains", "starts_with")


def yes_answer(reply: str, rule: str = "contains") -> float:
    """1.0 when a yes/no VLM's reply counts as yes, else 0.0: ``contains`` (ReBind's ``parse_yes_no``) when "yes" is
    anywhere in the lower-cased reply, ``starts_with`` when the reply starts with "yes" (any case, leading spaces and
    quotes ignored)."""
    if rule == "contains":
        return 1.0 if "yes" in reply.lower() else 0.0
    if rule == "starts_with":
        return 1.0 if reply.strip().strip("\"'").lower().startswith("yes") else 0.0
    raise T2IBenchError(f"role_bias.qa.answer_rule={rule!r}; valid: {', '.join(ANSWER_RULES)}")


def weighted_total(scores: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """sum_cat w_cat score_cat / sum_cat w_cat, floored at 0.001 (the official QA total)."""
    total = sum(weights[c] * scores[c] for c in scores) / sum(weights[c] for c in scores)
    return max(total, FLOOR)


def composition_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per frequency ('frequent'/'rare'): for each column prefix in ``columns``, M, U and beta = U - M, each the mean
    over compositions of the per-composition means of the image rows (``prompt_id``, ``frequency`` and
    ``<column>_M`` / ``<column>_U`` keys)."""
    per_composition: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        per_composition.setdefault(row["prompt_id"], []).append(row)
    out: dict[str, dict[str, float]] = {}
    for frequency in ("frequent", "rare"):
        comps = [r for r in per_composition.values() if r[0]["frequency"] == frequency]
        if not comps:
            continue
        for column in columns:
            m = sum(sum(r[f"{column}_M"] for r in c) / len(c) for c in comps) / len(comps)
            u = sum(sum(r[f"{column}_U"] for r in c) / len(c) for c in comps) / len(comps)
            out.setdefault(frequency, {})[f"{column}.M"] = m
            out[frequency][f"{column}.U"] = u
            out[frequency][f"{column}.beta"] = u - m
    return out


@dataclass
class YesNoVLMConfig:
    """The yes/no VLM of ``role_questions: yes_no``: ReBind's LLaVA-1.6 (llava_utils.get_model, get_batch_response)."""

    family: str = "llava_next"  # llava_next (ReBind's) | llava | qwen2_vl | clip-flant5
    model: str = stand_in("vqa", "llava-hf/llava-v1.6-vicuna-7b-hf")  # null: the family's checkpoint
    revision: str = "main"
    max_new_tokens: int = 5  # ReBind's
    answer_rule: str = "contains"  # contains (ReBind's parse_yes_no) | starts_with
    dtype: str | None = None
    seed: int = 0
    device: str = option("auto", runtime=True)


@dataclass
class RoleBiasConfig(EvaluatorConfig):
    """Role bias beta and role-question M/U/beta on RoleBench, scored with VQAScore (``vqa``)."""

    vqa: VQAConfig = option(factory=VQAConfig)
    role_questions: str = "statements"  # statements: VQAScore of the parallel statements | yes_no: a VLM's answers
    qa: YesNoVLMConfig = option(factory=YesNoVLMConfig)
    chunk_size: int = option(64, runtime=True)


@EVALUATORS.register("role_bias")
class RoleBiasEvaluator(Evaluator):
    """Role bias beta and role-question M/U/beta (see the module docstring)."""

    name = "role_bias"
    config_schema = RoleBiasConfig
    metric_specs = (
        MetricSpec(
            "*.beta",
            "beta = U - M (score difference)",
            False,
            "the paper's beta with a down arrow: lower means the image matches its own composition better than the "
            "reversed one; positive beta is role collapse",
        ),
        MetricSpec("*.M", "score of the matching (own) composition (0-1)", True),
        MetricSpec("*.U", "score of the unmatching (reversed) composition (0-1)", False),
    )
    backbone_keys = {"VQA": ("vqa.model", "vqa.revision"), "yes/no VLM": ("qa.model", "qa.revision")}

    def _vqa(self) -> VQAConfig:
        return self.cfg.vqa

    def _qa(self) -> VQAConfig:
        """The yes/no VLM as a VQA model config (what :func:`t2ibench.backbones.vqa.load` builds)."""
        qa = self.cfg.qa
        return VQAConfig(
            family=qa.family, model=qa.model, revision=qa.revision, dtype=qa.dtype, seed=qa.seed, device=qa.device
        )

    def eval_config(self) -> dict[str, Any]:
        """The configuration with the VQA family's resolved model, template, answer and rule."""
        runtime = keys_with(VQAConfig, "runtime")  # python, timeout, batch_size, device: no number changes
        resolved = {**as_dict(resolve_family(self._vqa())), **resolved_values(self._vqa())}
        vqa = {k: v for k, v in resolved.items() if k not in runtime}
        return {**super().eval_config(), "vqa": vqa}

    def required_weights(self) -> Requirements:
        needs = vqa_requirements(self._vqa())
        if self.cfg.role_questions == "yes_no":
            needs.extend(vqa_requirements(self._qa()))
        return needs

    def backbones(self) -> dict[str, str]:
        found = super().backbones()
        if self.cfg.role_questions != "yes_no":
            found.pop("yes/no VLM", None)  # only the yes/no mode asks a chat VLM
        return found

    def _pair_values(
        self, store: RunStore, records: Sequence[Mapping[str, Any]], pairs: Sequence[tuple[int, str, str]]
    ) -> list[float]:
        """VQAScore of the ITA pairs, and of the statements or the yes/no answers to the questions."""
        if self.cfg.role_questions == "statements":
            return vqa_scores(self._vqa(), store, [records[i] for i, _, _ in pairs], [t for _, _, t in pairs])
        ita = [k for k, (_, column, _) in enumerate(pairs) if "#" not in column]
        values = dict(
            zip(
                ita,
                vqa_scores(self._vqa(), store, [records[pairs[k][0]] for k in ita], [pairs[k][2] for k in ita]),
                strict=True,
            )
        )
        qa = resolve_family(self._qa())
        model = vqa_backbone.load(qa)
        by_record: dict[int, list[int]] = {}
        for k, (i, column, _) in enumerate(pairs):
            if "#" in column:
                by_record.setdefault(i, []).append(k)
        for i, ks in by_record.items():
            image = store.load_image(records[i])
            for k in ks:
                reply = model.generate([image], pairs[k][2], self.cfg.qa.max_new_tokens)[0]
                values[k] = yes_answer(reply, self.cfg.qa.answer_rule)
        return [values[k] for k in range(len(pairs))]

    def score(self, store: RunStore, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        mode = self.cfg.role_questions
        if mode not in ("statements", "yes_no"):
            raise T2IBenchError(f"role_bias.role_questions={mode!r}; valid: statements, yes_no")
        field = "statements" if mode == "statements" else "questions"
        pairs: list[tuple[int, str, str]] = []  # (record index, column, text)
        for i, record in enumerate(records):
            meta = record["prompt"]["metadata"]
            if "vqa_text" not in meta or "questions" not in meta:
                raise T2IBenchError(
                    f"role_bias needs RoleBench prompts (vqa_text, questions); {record['prompt']['id']} has none"
                )
            pairs += [(i, "ita_M", meta["vqa_text"]), (i, "ita_U", meta["vqa_text_reverse"])]
            for side, key in (("M", "questions"), ("U", "questions_reverse")):
                for category in CATEGORIES:
                    texts = meta[key][category][field]
                    pairs += [(i, f"{category}_{side}#{k}", s) for k, s in enumerate(texts)]
        values = self._pair_values(store, records, pairs)
        rows: list[dict[str, Any]] = [{"frequency": r["prompt"]["metadata"]["frequency"]} for r in records]
        sums: list[dict[str, list[float]]] = [{} for _ in records]
        for (i, column, _), value in zip(pairs, values, strict=True):
            if "#" in column:
                sums[i].setdefault(column.split("#")[0], []).append(value)
            else:
                rows[i][column] = value
        for i, record in enumerate(records):
            meta = record["prompt"]["metadata"]
            for side, key in (("M", "questions"), ("U", "questions_reverse")):
                scores = {c: sum(sums[i][f"{c}_{side}"]) / len(sums[i][f"{c}_{side}"]) for c in CATEGORIES}
                rows[i].update({f"{c}_{side}": v for c, v in scores.items()})
                rows[i][f"total_{side}"] = weighted_total(
                    scores, {c: float(meta[key][c]["weight"]) for c in CATEGORIES}
                )
        return rows

    def aggregate(self, frame: Any) -> list[Cell]:
        if not len(frame):
            return []
        rows = frame.to_dict("records")
        table = composition_table(rows, ["ita", *CATEGORIES, "total"])
        cells = []
        for frequency, values in table.items():
            n = int((frame["frequency"] == frequency).sum())
            for name, value in values.items():
                metric = f"{frequency}.{name}".replace(".ita.", ".vqascore.")
                if name.endswith(".beta"):
                    column = name.split(".")[0]
                    diffs = [r[f"{column}_U"] - r[f"{column}_M"] for r in rows if r["frequency"] == frequency]
                    _, low, high = mean_ci(diffs)
                    shift = value - sum(diffs) / len(diffs) if diffs else 0.0  # the macro mean; the CI is over images
                    cells.append(
                        Cell(
                            metric,
                            value,
                            None if low is None else low + shift,
                            None if high is None else high + shift,
                            n,
                        )
                    )
                else:
                    cells.append(Cell(metric, value, None, None, n))
        return cells
