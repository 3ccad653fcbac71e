"""The ``t2ibench`` console script: a Hydra app over ``conf/`` (see ``t2ibench --help``).

Before Hydra composes anything, the names chosen on the command line (``model=``, ``method=``,
``benchmark=``, ``experiment=``, ``evaluators=[...]``, sweeps included) are checked against ``conf/``;
an unknown name exits with status 2 and one line naming the valid ones. Errors of the user's making
raised during a run (:class:`~t2ibench.errors.T2IBenchError`) are logged as one line, exit status 2.
"""

from __future__ import annotations

import logging
import sys
from importlib import resources

import hydra
from omegaconf import DictConfig, OmegaConf

from t2ibench.errors import T2IBenchError

log = logging.getLogger("t2ibench")

GROUPS = ("model", "method", "benchmark", "experiment", "tiny")
EXIT_USER_ERROR = 2


def conf_options(group: str) -> list[str]:
    """The option names of a config group (the YAML files in ``conf/<group>/``)."""
    folder = resources.files("t2ibench.conf").joinpath(group)
    if not folder.is_dir():
        return []
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def _values(override) -> list[str]:
    if override.is_sweep_override():
        return [str(v) for v in override.sweep_string_iterator()]
    value = override.value()
    if isinstance(value, list):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


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
        if key in GROUPS:
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


@hydra.main(version_base="1.3", config_path="pkg://t2ibench.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    from t2ibench.runner import run_cell

    try:
        container = OmegaConf.to_container(cfg, resolve=True)
        run_cell(container)
    except T2IBenchError as err:
        log.error("%s", err)
        sys.exit(EXIT_USER_ERROR)


def main() -> None:
    """Entry point of the ``t2ibench`` console script."""
    args = sys.argv[1:]
    if not any(a in ("--help", "-h", "--hydra-help", "--info", "--cfg", "-c") for a in args):
        try:
            check_overrides(args)
        except T2IBenchError as err:
            print(f"t2ibench: error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
    hydra_main()


if __name__ == "__main__":
    main()
