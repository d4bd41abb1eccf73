"""Peak resident memory (RSS) of the preprocessing and labeling stages on single files, FFmpeg's,
PyAV's, OpenCV's and torch's buffers included; run as a script by ``test_bad_input``.

Reads a request on stdin: ``jobs``, a list of ``{"stage": "label", "path": ...}`` or
``{"stage": "preprocess", "trial": {...}}``, and ``warm``, small good files and their trials.
Each job runs in a child forked from one process that imported everything: the child first
takes the warm files through both stages (so that caches are filled and the libraries' pages
it needs are mapped: a forked child maps file pages anew), hands freed memory back to the
system (``malloc_trim``), resets its RSS high-water mark (``/proc/self/clear_refs``), runs the
job, and reports how far its peak RSS rose above its RSS just before. Prints those increases
in bytes as a JSON list, in job order.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1])


def run_stage(job: dict) -> None:
    from emoray.features.config import preset
    from emoray.label.stage import Settings, prepare_file
    from emoray.preprocess.stage import ShardReport, featurize_trial

    features = preset("default")
    if job["stage"] == "label":
        path = job["path"]
        size = os.path.getsize(path) if os.path.exists(path) else 0  # a dangling link: 0
        for _ in prepare_file(path, size, "fusion", features, Settings()):
            pass
    else:
        featurize_trial(job["trial"], features, ShardReport("x"))


def warm_up(request: dict) -> None:
    for path in request["warm"]:
        run_stage({"stage": "label", "path": path})
    for trial in request["warm_trials"]:
        run_stage({"stage": "preprocess", "trial": trial})


def peak_increase(job: dict, request: dict) -> int:
    """Bytes the peak RSS of a child running ``job`` rose above its RSS at the start."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 1
        try:
            warm_up(request)
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # VmHWM := VmRSS
            start = status_kb("VmRSS")
            run_stage(job)
            os.write(write, str((status_kb("VmHWM") - start) * 1024).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    if status or not out:
        raise RuntimeError(f"measuring {job} failed (wait status {status})")
    return int(out)


def main() -> None:
    import cv2
    import torch

    torch.set_num_threads(1)  # as in a Ray task of either job: one CPU, no thread pools
    cv2.setNumThreads(1)
    request = json.load(sys.stdin)
    warm_up(request)
    print(json.dumps([peak_increase(job, request) for job in request["jobs"]]))


if __name__ == "__main__":
    main()
