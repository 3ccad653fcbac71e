"""The ``t2ibench`` console script: a Hydra app over ``conf/`` (see ``t2ibench --help``).

Before Hydra composes anything, the names chosen on the command line (``model=``, ``method=``,
``benchmark=``, ``experiment=``, ``evaluators=[...]``, sweeps included) are checked against ``conf/``;
an unknown name exits with status 2 and one line naming the valid ones. Every error of the user's making
(:class:`~t2ibench.errors.T2IBenchError`), whichever stage raises it, is one line ``t2ibench: error: ...`` on
stderr and exit status 2.

In a sweep (``-m``) a failing cell does not stop the others: its error is printed when it fails and recorded,
and when the sweep ends :class:`SweepReport` (a Hydra callback, ``hydra.callbacks`` in ``conf/config.yaml``)
lists every failed cell with its reason; the exit status is then 2. In a sweep the tables, the paper comparison and
the leaderboard are rebuilt once, when it ends, not after every cell. The cells note their failures and results
folders in ``<hydra.sweep.dir>/.t2ibench/`` (one file per cell, so cells in other processes, e.g. submitit's,
report too).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
import traceback
from importlib import resources
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from t2ibench.config_compose import CONFIG_MODULE, CONFIG_NAME, VERSION_BASE, replace_containers
from t2ibench.errors import T2IBenchError

log = logging.getLogger("t2ibench")

GROUPS = ("model", "method", "benchmark", "experiment", "tiny")
EXIT_USER_ERROR = 2
SWEEP_ENV = "T2IBENCH_SWEEP_STATE"  # where the cells of the running sweep note their failures and results folders
_SWEEP_FAILED: list[dict[str, Any]] = []  # set by SweepReport.on_multirun_end, read by main() for the exit status


def one_line(err: BaseException) -> str:
    """An exception's message (and its cause's) as one line."""
    parts = [str(err)]
    if err.__cause__ is not None and str(err.__cause__) not in parts[0]:
        parts.append(f"({str(err.__cause__).splitlines()[0]})")
    text = " ".join(" ".join(line.strip() for line in part.splitlines() if line.strip()) for part in parts)
    return text or type(err).__name__


def os_error_message(err: OSError) -> str:
    """An environment error as one line naming the path (``No space left on device: outputs/runs/...``); what was
    written before it is whole (atomic writes), and the cell resumes when run again."""
    where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f)
    text = err.strerror or type(err).__name__
    return f"{text}: {where} (nothing half-written is kept; run again to resume)" if where else f"{text} ({err})"


def on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (a cluster's time limit, scancel, a requeue): say so in the log and stop; what was written is whole and
    the cell resumes when run again. Exit status 143, as a process killed by SIGTERM."""
    log.warning("terminated by SIGTERM: stopping; the cell is resumable (run the same command again)")
    raise SystemExit(128 + signum)


def user_error(message: str) -> None:
    """Print one user error line, the same for every stage."""
    print(f"t2ibench: error: {message}", file=sys.stderr, flush=True)


def conf_options(group: str) -> list[str]:
    """The option names of a config group: the YAML files in ``conf/<group>/`` and the options stored in Hydra's
    ConfigStore (each plugin's schema, built-in or from another package); ``evaluator``: the registered evaluators."""
    import t2ibench.conf  # noqa: F401 - stores the schemas (registries discovered, entry points included)

    if group == "evaluator":
        from t2ibench.api import EVALUATORS

        return EVALUATORS.names()
    from hydra.core.config_store import ConfigStore

    names = set()
    folder = resources.files("t2ibench.conf").joinpath(group)
    if folder.is_dir():
        names |= {entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml")}
    stored = ConfigStore.instance().repo
    for part in group.split("/"):
        stored = stored.get(part, {}) if isinstance(stored, dict) else {}
    names |= {key[: -len(".yaml")] for key in stored if key.endswith(".yaml")}
    return sorted(names)


def _values(override) -> list[str]:
    if override.is_sweep_override():
        return [str(v) for v in override.sweep_string_iterator()]
    value = override.value()
    if isinstance(value, list):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


# hydra/launcher options whose Hydra plugin is an optional extra: option -> (plugin module, pip requirement, extra)
LAUNCHER_PLUGINS = {
    "gpus": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher>=1.2.2", "gpus"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher>=1.2.2", "gpus"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher>=1.2", "slurm"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher>=1.2", "slurm"),
}


def check_launcher(value: str) -> None:
    """Raise :class:`T2IBenchError` when ``hydra/launcher=value`` needs a Hydra plugin that is not installed."""
    import importlib.util

    plugin = LAUNCHER_PLUGINS.get(value)
    if plugin is not None and importlib.util.find_spec(plugin[0]) is None:
        raise T2IBenchError(
            f"hydra/launcher={value} needs the Hydra plugin {plugin[1]!r}: pip install '{plugin[1]}' "
            f"(or the t2ibench extra: pip install -e '.[{plugin[2]}]')"
        )


def known_keys() -> list[str]:
    """The dotted keys of the run's sections as their schemas declare them (``run.seeds``, ``generation.height``, ...)."""
    import dataclasses

    from t2ibench import schema

    sections = {
        "run": schema.RunConfig,
        "generation": schema.GenerationConfig,
        "results": schema.ResultsConfig,
        "model": schema.ModelConfig,
    }
    return [f"{name}.{f.name}" for name, cls in sections.items() for f in dataclasses.fields(cls)]


def check_overrides(args: list[str]) -> None:
    """Raise :class:`T2IBenchError` for an unknown group option or evaluator name in ``args``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    overrides = [a for a in args if not a.startswith("-") and "=" in a]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise T2IBenchError(f"cannot parse overrides: {str(err).splitlines()[0]}") from None
    for override in parsed:
        key = override.key_or_group.lstrip("+~")
        if override.is_delete():
            continue
        if override.is_add() and not override.is_force_add() and key not in (*GROUPS, "hydra/launcher"):
            # '+key=value' adds a key the config does not have: a typo (+run.seed for run.seeds) would be ignored
            close = difflib.get_close_matches(key, known_keys(), n=1)
            hint = f"; did you mean {close[0]}=...?" if close else ""
            raise T2IBenchError(
                f"unknown key '{key}': '+' adds a config group (e.g. +tiny=all), not a key the config does not "
                f"declare{hint}"
            )
        if key == "hydra/launcher":
            for value in _values(override):
                check_launcher(value)
        elif key in GROUPS:
            valid = conf_options(key)
            for value in _values(override):
                if value not in valid and value != "null":
                    plural = "tiny options" if key == "tiny" else f"{key}s"
                    raise T2IBenchError(f"unknown {key} '{value}'; valid {plural}: {', '.join(valid)}")
        elif key == "evaluators":
            valid = conf_options("evaluator")
            elements = []
            if override.is_sweep_override():
                for value in override.sweep_iterator():
                    elements += value if isinstance(value, list) else [value]
            else:
                value = override.value()
                elements = value if isinstance(value, list) else [value]
            for value in elements:
                if str(value) not in valid:
                    raise T2IBenchError(f"unknown evaluator '{value}'; valid evaluators: {', '.join(valid)}")


class SweepReport(Callback):
    """Hydra callback of a sweep (see the module docstring): the cells record their failures and their results
    folders under ``<hydra.sweep.dir>/.t2ibench/``; when the sweep ends, each results folder's tables, comparison and
    leaderboard are rebuilt once (the report step), and the failed cells are kept for :func:`main` to list."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.sweep.dir)) / ".t2ibench"
        for part in ("failed", "results"):
            (folder / part).mkdir(parents=True, exist_ok=True)
        os.environ[SWEEP_ENV] = str(folder.resolve())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from t2ibench.tables import refresh_results

        folder = os.environ.pop(SWEEP_ENV, None)
        if not folder or not Path(folder).is_dir():
            return
        done = [json.loads(p.read_text()) for p in sorted(Path(folder, "results").glob("*.json"))]
        for target in {(d["results_dir"], d.get("published")) for d in done}:
            try:
                refresh_results(*target)
            except T2IBenchError as err:
                user_error(f"tables of {target[0]}: {err}")
        failed = [json.loads(p.read_text()) for p in Path(folder, "failed").glob("*.json")]
        _SWEEP_FAILED[:] = sorted(failed, key=lambda item: int(item["job"]))


def _sweep_note(part: str, content: dict[str, Any]) -> None:
    """Record ``content`` for the running sweep's :class:`SweepReport` (one file per cell)."""
    from hydra.core.hydra_config import HydraConfig

    from t2ibench.atomic import atomic_write_json

    folder = os.environ.get(SWEEP_ENV)
    if folder:
        atomic_write_json(Path(folder, part, f"{HydraConfig.get().job.num}.json"), content)


def _record_failure(error: str, detail: str = "") -> None:
    from hydra.core.hydra_config import HydraConfig

    job = HydraConfig.get().job
    overrides = [str(o) for o in HydraConfig.get().overrides.task]
    _sweep_note("failed", {"job": job.num, "overrides": overrides, "error": error, "detail": detail})
    user_error(f"cell #{job.num} ({' '.join(overrides)}) failed: {error}; the sweep goes on")


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base=VERSION_BASE, config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME)
def hydra_main(cfg: DictConfig) -> None:
    from omegaconf.errors import OmegaConfBaseException

    from t2ibench.runner import run_cell

    try:
        try:
            from hydra.core.hydra_config import HydraConfig

            replace_containers(cfg, list(HydraConfig.get().overrides.task))
            container = OmegaConf.to_container(cfg, resolve=True)
        except OmegaConfBaseException as err:  # e.g. a mandatory value (???) left unset
            raise T2IBenchError(one_line(err)) from None
        if _in_multirun():  # tables are rebuilt once, when the sweep ends (SweepReport)
            summary = run_cell(container, tables=False)
            published = (container.get("results") or {}).get("published")
            _sweep_note("results", {"results_dir": summary["results"], "published": published})
        else:
            run_cell(container)
    except (T2IBenchError, OSError) as err:  # OSError: a full disk, a permission, a name too long, ... anywhere
        message = str(err) if isinstance(err, T2IBenchError) else os_error_message(err)
        if not _in_multirun():
            user_error(message)
            sys.exit(EXIT_USER_ERROR)
        _record_failure(message)
    except Exception as err:  # noqa: BLE001 - in a sweep one broken cell must not stop the others
        if not _in_multirun():
            raise
        log.exception("cell failed with an unexpected error")
        _record_failure(f"{type(err).__name__}: {err}", traceback.format_exc())


HELP_HEADER = """t2ibench: methods x benchmarks x evaluators for text-to-image diffusion.
A run selects one model, one method, one benchmark and a list of evaluators, generates images into
the run store (run.root), scores them and writes tables to results/<experiment_name>/.
"""
HELP_FOOTER = """Examples:
  t2ibench                                             # the embedded tiny default (offline)
  t2ibench method=sd benchmark=tiny run.seeds=[0,1,2] benchmark.n=2
  t2ibench -m method=sd generation.guidance_scale=5,7.5  # a sweep: one cell per value
  t2ibench -m hydra/launcher=gpus method=sd,syngen       # a sweep over every GPU of this machine, one cell each
  t2ibench model=sd14 evaluators=[clip_score]           # a real model (weights from the hub or model.path)
Overrides: any key of the config above, e.g. evaluator.clip_score.clamp=mean.
Every method, benchmark and evaluator with its paper: t2ibench list
Hydra's own options: t2ibench --hydra-help; the composed config of a run: t2ibench [overrides] --cfg job
"""


def help_text(overrides: list[str]) -> str:
    """``t2ibench --help``: the config groups with their options (read from ``conf/``) and the config composed with
    ``overrides``. Rendered here rather than by Hydra, whose help deep-copies the whole config repository once per
    config group (seconds, and more with every installed Hydra plugin)."""
    from omegaconf import OmegaConf

    from t2ibench.config_compose import compose_config

    groups = "\n".join(f"{g}: {', '.join(conf_options(g))}" for g in sorted((*GROUPS, "evaluator")))
    config = OmegaConf.to_yaml(compose_config(overrides))
    return (
        f"{HELP_HEADER}\n== Config groups ==\nChoose one option of each group (group=option); evaluators=[a,b] takes "
        f"names from the evaluator group.\n\n{groups}\n\n== Config ==\n{config}\n{HELP_FOOTER}"
    )


def plugin_summary(obj: Any) -> str:
    """One line on a plugin from its module docstring: the paper it follows (its first sentence)."""
    import inspect
    import re

    module = inspect.getmodule(obj)
    doc = inspect.cleandoc((module.__doc__ if module is not None else None) or obj.__doc__ or "")
    first = " ".join(doc.split("\n\n")[0].split())
    match = re.match(r"(.+?[^l]\.)(\s|$)", first)  # the first sentence ("et al." does not end one)
    sentence = match.group(1) if match else first
    return sentence if len(sentence) <= 150 else sentence[:147].rstrip() + "..."


def plugin_listing() -> str:
    """``t2ibench list``: every method, benchmark and evaluator (built in or from an installed package) with its
    paper, and the variants of ``conf/method/``."""
    from t2ibench.api import BENCHMARKS, EVALUATORS, METHODS

    lines = []
    for group, registry in (("method", METHODS), ("benchmark", BENCHMARKS), ("evaluator", EVALUATORS)):
        lines.append(f"== {group}s ({group}={'NAME' if group != 'evaluator' else '...'}) ==")
        names = registry.names()
        width = max(len(n) for n in names)
        for name in names:
            obj = registry.get(name)
            module = getattr(obj, "__module__", "")
            origin = "" if module.startswith("t2ibench.") else f"  [{module.split('.')[0]}]"
            lines.append(f"  {name:<{width}}  {plugin_summary(obj)}{origin}")
        if group == "method":
            variants = [n for n in conf_options("method") if n not in names]
            if variants:
                lines.append(f"  variants (conf/method/): {', '.join(variants)}")
        lines.append("")
    lines.append("evaluators=[a,b] picks evaluators; each plugin's options: t2ibench method=NAME --cfg job")
    return "\n".join(lines)


def _job_config_request(args: list[str]) -> bool:
    """True for ``t2ibench [overrides] --cfg job [--resolve]`` (not a sweep, no other Hydra flag)."""
    flags = [a for a in args if a.startswith("-")]
    for flag in ("--cfg", "-c"):
        if flag in args:
            index = args.index(flag)
            return index + 1 < len(args) and args[index + 1] == "job" and set(flags) <= {flag, "--resolve"}
    return False


def main() -> None:
    """Entry point of the ``t2ibench`` console script."""
    args = sys.argv[1:]
    if args == ["list"]:
        print(plugin_listing())
        return
    if any(a in ("--help", "-h") for a in args):
        from hydra.errors import HydraException

        try:
            check_overrides(args)
            print(help_text([a for a in args if not a.startswith("-")]))
        except (T2IBenchError, HydraException) as err:
            user_error(one_line(err))
            sys.exit(EXIT_USER_ERROR)
        return
    if _job_config_request(args):  # `--cfg job`: printed here, so that it shows what runs (dict options replaced)
        from hydra.errors import HydraException

        from t2ibench.config_compose import compose_config

        overrides = [a for a in args if not a.startswith("-") and a != "job"]
        try:
            check_overrides(overrides)
            print(OmegaConf.to_yaml(compose_config(overrides), resolve="--resolve" in args), end="")
        except (T2IBenchError, HydraException) as err:
            user_error(one_line(err))
            sys.exit(EXIT_USER_ERROR)
        return
    if not any(a in ("--hydra-help", "--info", "--cfg", "-c") for a in args):
        try:
            check_overrides(args)
        except T2IBenchError as err:
            user_error(str(err))
            sys.exit(EXIT_USER_ERROR)
    import signal

    from hydra.errors import HydraException

    signal.signal(signal.SIGTERM, on_sigterm)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its own multi-line report ...
    try:
        hydra_main()
    except HydraException as err:  # ... so a bad override or config is one line like every other user error
        user_error(one_line(err))
        sys.exit(EXIT_USER_ERROR)
    from t2ibench import cli  # the module the callback lives in (this one is __main__ under `python -m`)

    failed = cli._SWEEP_FAILED
    if failed:
        first = failed[0]
        more = f" (+{len(failed) - 1} more, listed above)" if len(failed) > 1 else ""
        user_error(
            f"{len(failed)} cell(s) of the sweep failed; the others ran. First: #{first['job']} "
            f"({' '.join(first['overrides'])}): {first['error']}{more}"
        )
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
