"""One side of a comparison, timed in its own process: ``python -m benchmarks._worker < request.json``.

The request (JSON on stdin) names a factory in a ``benchmarks.bench_*`` module,
its keyword arguments, the repeats and warm-up calls; the answer is one line
on stdout, ``RESULT_MARKER`` + JSON: the wall times, this process's
configuration (``benchmarks._env.process_record``) and, if asked, the last
result as nested lists. See ``benchmarks._timing.isolated``.
"""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np

from benchmarks._env import process_record
from benchmarks._timing import RESULT_MARKER, call_times


def _plain(out):
    if isinstance(out, tuple | list):
        return [_plain(o) for o in out]
    return np.asarray(out).tolist()


def main() -> None:
    request = json.loads(sys.stdin.read())
    factory = getattr(importlib.import_module(request["module"]), request["factory"])
    fn = factory(**request["kwargs"])
    times, out = call_times(fn, request["repeats"], request["warmup"])
    answer = {"times": times, "env": process_record()}
    if request.get("return_result"):
        answer["result"] = _plain(out)
    print(RESULT_MARKER + json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
