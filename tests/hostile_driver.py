"""Run hostile-corpus cases in this process, under an address-space limit, and print the outcomes as JSON.

Used by tests/test_hostile_inputs.py in a subprocess: ``python tests/hostile_driver.py CASES.json``.
Each command goes through the real CLI entry point (``app.cli.main.main``) with its output captured;
the app's loaders are called directly. A command that outlives its time bound is interrupted.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import time

TIME_LIMIT_S = int(os.environ.get("HOSTILE_TIME_LIMIT_S", "60"))


class TimeBoundExceeded(BaseException):
    pass


def _alarm(signum, frame):
    raise TimeBoundExceeded


def _run(fn):
    out, err = io.StringIO(), io.StringIO()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT_S)
    start = time.process_time(), time.perf_counter()
    outcome = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            outcome = fn()
    except TimeBoundExceeded:
        outcome = "timeout"
    except SystemExit as exc:  # argparse's own exit
        outcome = exc.code
    except BaseException as exc:  # escaped the entry point: a defect
        outcome = f"escaped {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.alarm(0)
    return {"outcome": outcome, "stdout": out.getvalue()[-2000:], "stderr": err.getvalue()[-4000:], "wall_s": time.perf_counter() - start[1]}


def _peak_rss_mb() -> float:
    """This process's own peak resident memory (MB): VmHWM of its address space since exec. Linux's
    ru_maxrss also counts the parent's resident memory at fork (pytest's, ~2.5 GB late in a full run),
    which once pushed every case over the budget without any case allocating."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    limit = int(os.environ.get("HOSTILE_ADDRESS_SPACE_BYTES", str(8 << 30)))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    pass  # the caller sets SPLINEATLAS_CACHE
    from app.cli.main import main as cli
    from app.jobs import open_run_bundle
    from app.model.session import read_session
    from geometry.errors import SplineAtlasError

    cases = json.loads(open(sys.argv[1]).read())
    results = {}
    for case in cases:
        res = {"commands": [_run(lambda argv=argv: cli(list(argv))) for argv in case["commands"]]}
        if case["app_loader"]:
            load = open_run_bundle if case["app_loader"] == "run" else read_session

            def app_load():
                try:
                    load(case["target"])
                    return "loaded"
                except SplineAtlasError as exc:
                    return f"refused: {str(exc)[:300]}"

            res["app"] = _run(app_load)
        res["peak_rss_mb"] = _peak_rss_mb()
        results[case["name"]] = res
    print(json.dumps(results))


if __name__ == "__main__":
    main()
