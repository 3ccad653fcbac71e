"""``t2ibench-data``: list, fetch and verify the dataset files of the benchmarks ahead of time.

    t2ibench-data list                         # every benchmark's files, where they are found, and whether verified
    t2ibench-data fetch i2p coco30k            # download (or find) and verify these benchmarks' files
    t2ibench-data fetch --all                  # every file
    t2ibench-data fetch --experiment smoke     # the files the experiment's benchmark needs
    t2ibench-data fetch --all --data-dir DIR   # check a local folder laid out like shared/datasets
    t2ibench-data fetch genai_bench --only '*images_1600*'   # some files only (zips are extracted beside them)

For cluster nodes without internet: run ``fetch`` where there is internet, then copy the cache folder
(``$T2IBENCH_CACHE``/datasets, default ``~/.cache/t2ibench/datasets``) or point ``T2IBENCH_DATA_DIR`` at it.
Exit status 0 when every requested file is present and verified, 2 otherwise (one line per problem).
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Sequence

from t2ibench.data_files import DataFile, extract, resolve
from t2ibench.errors import T2IBenchError


def files_by_benchmark() -> dict[str, tuple[DataFile, ...]]:
    """The data files each registered benchmark reads (benchmarks without files are left out)."""
    from t2ibench.api import BENCHMARKS

    out = {}
    for name in BENCHMARKS.names():
        files = getattr(BENCHMARKS.get(name), "data_files", ())
        if files:
            out[name] = tuple(files)
    return out


def experiment_benchmark(experiment: str) -> str:
    """The benchmark an experiment config selects (composed with Hydra)."""
    from hydra.errors import HydraException

    from t2ibench.config_compose import compose_config

    try:
        cfg = compose_config([f"experiment={experiment}"])
    except HydraException as err:
        raise T2IBenchError(f"cannot compose experiment '{experiment}': {str(err).splitlines()[0]}") from None
    return str(cfg.benchmark.name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="t2ibench-data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show every benchmark's data files and their state").add_argument("--data-dir")
    fetch = sub.add_parser("fetch", help="find or download, then verify, data files")
    fetch.add_argument("benchmarks", nargs="*")
    fetch.add_argument("--all", action="store_true")
    fetch.add_argument("--experiment")
    fetch.add_argument("--data-dir")
    fetch.add_argument("--only", help="fetch only the files whose path matches this pattern, e.g. '*images_1600*'")
    args = parser.parse_args(argv)
    known = files_by_benchmark()
    try:
        if args.command == "list":
            for name, files in known.items():
                for spec in files:
                    try:
                        found = resolve(spec, data_dir=args.data_dir, allow_download=False)
                        state = f"ok {found.path}"
                    except T2IBenchError as err:
                        state = f"missing ({str(err).split(':')[0]})"
                    sample = f"\tsample {spec.sample}: {spec.sample_note}" if spec.sample else ""
                    print(f"{name}\t{spec.relpath}\t{(spec.sha256 or 'unpinned')[:12]}\t{state}{sample}")
            return 0
        names = list(args.benchmarks)
        if args.all:
            names = list(known)
        if args.experiment:
            names.append(experiment_benchmark(args.experiment))
        if not names:
            parser.error("name benchmarks, --all or --experiment")
        failures = 0
        for name in dict.fromkeys(names):
            if name not in known:
                from t2ibench.api import BENCHMARKS

                BENCHMARKS.get(name)  # unknown names raise with the valid list
                print(f"{name}: no data files (defined in t2ibench itself)")
                continue
            for spec in known[name]:
                if args.only and not fnmatch.fnmatch(spec.relpath, args.only):
                    continue
                try:
                    found = resolve(spec, data_dir=args.data_dir)
                    print(f"{name}: {spec.relpath} ok ({found.path})")
                    if spec.archive:
                        print(f"{name}: {spec.relpath} extracted into {extract(found)}")
                except T2IBenchError as err:
                    failures += 1
                    print(f"t2ibench-data: error: {err}", file=sys.stderr)
        return 2 if failures else 0
    except T2IBenchError as err:
        print(f"t2ibench-data: error: {err}", file=sys.stderr)
        return 2


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
