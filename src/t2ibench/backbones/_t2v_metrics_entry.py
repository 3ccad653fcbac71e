"""Score (image, text) pairs with the reference package t2v-metrics, in its own environment.

t2v-metrics 3.0 pins torch 2.5.1 and transformers 4.49, so it cannot share t2ibench's environment. This file uses
only the standard library and ``t2v_metrics``; t2ibench runs it with the configured python of that environment:

    python _t2v_metrics_entry.py --model clip-flant5-xxl --request pairs.json --output scores.json

``pairs.json``: a list of {"image": path, "text": text}; ``scores.json``: the same list with "score" added, plus
the package version. Set up the environment with ``pip install t2v-metrics==3.0`` (it needs ffmpeg on PATH).
"""

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--request", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    try:
        import t2v_metrics
    except Exception as err:  # noqa: BLE001 - the message goes back to t2ibench
        print(f"cannot import t2v_metrics in {sys.executable}: {err}", file=sys.stderr)
        return 3
    with open(args.request, encoding="utf-8") as handle:
        pairs = json.load(handle)
    scorer = t2v_metrics.VQAScore(model=args.model)
    out = []
    for pair in pairs:
        score = scorer(images=[pair["image"]], texts=[pair["text"]])
        out.append({**pair, "score": float(score[0][0])})
    version = getattr(t2v_metrics, "__version__", "unknown")
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump({"t2v_metrics_version": version, "model": args.model, "scores": out}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
