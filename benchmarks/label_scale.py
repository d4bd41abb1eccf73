"""The labeling driver at archive scale: its peak memory and throughput as the archive grows.

Labels N tiny real-format files (hard links of one short clip: a real RAVDESS speech file
when the data is there, else a 1.5 s WAV), spread over speaker folders of 20 files, with
``emoray label`` in a fresh process with its own local Ray, for each N of ``--files``; then
re-runs the largest with everything done. Prints the driver's peak RSS (the ``emoray label``
process alone: Ray's own processes are not the driver), wall time and files/s. Then plans a
synthetic listing of ``--plan`` entries (speaker folders of 20) without labelling it
(``emoray.label.plan.Plan`` and its waves, in a child process), with its peak RSS and time.

    python -m benchmarks.label_scale [--work DIR] [--files 10000 100000] [--plan 10000000]
        [--model models/audio-speech18.pt] [--cpus 2]

Targets (issue 17): driver peak RSS at 100k files at most 1.2x that at 10k; files/s at 100k
no lower than at 10k; 10 million entries planned in under 2 GB and a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

REAL = Path(os.environ.get("EMORAY_DATA") or Path(__file__).resolve().parents[2] / "shared/data")
PER_SPEAKER = 20


def clip(work: Path) -> Path:
    """The one clip every file links to."""
    real = REAL / "ravdess-speech-16k" / "Actor_01" / "03-01-01-01-01-01-01.flac"
    if real.is_file():
        return real
    path = work / "clip.wav"
    if not path.exists():
        t = np.arange(24000) / 16000
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes((8000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes())
    return path


LINKS = 50_000  # hard links per copy of the clip (a file system caps links per file)


def archive(work: Path, n: int) -> Path:
    """``n`` hard links of copies of ``clip`` in folders of ``PER_SPEAKER`` (made once)."""
    root = work / f"archive-{n}"
    if not root.exists():
        tmp = work / f"archive-{n}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "sources").mkdir(parents=True)
        for i in range(n):
            folder = tmp / f"speaker{i // PER_SPEAKER:06d}"
            if i % PER_SPEAKER == 0:
                folder.mkdir()
            src = tmp / "sources" / f"clip{i // LINKS}{clip(work).suffix}"
            if i % LINKS == 0:
                shutil.copy(clip(work), src)
            os.link(src, folder / f"rec{i % PER_SPEAKER:02d}{src.suffix}")
        os.rename(tmp / "sources", work / f"sources-{n}")  # not part of the archive
        tmp.rename(root)
    return root


def driver_run(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS of the process ``cmd`` starts, in MiB; seconds)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:  # VmHWM: the kernel's high-water mark of its resident set
            peak = max(peak, next(int(line.split()[1]) for line in status.read_text()
                                  .splitlines() if line.startswith("VmHWM:")))
        except (OSError, StopIteration):
            pass
        time.sleep(0.2)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): "
                 f"{proc.stderr.read().decode()[-2000:]}")
    return peak / 1024, time.perf_counter() - start


def plan_only(n: int) -> dict:
    """Plan a synthetic listing of ``n`` entries in this process (run in a child)."""
    from emoray import storage
    from emoray.label.plan import Plan

    def listing():
        for i in range(n):
            yield storage.FileEntry(f"s3://archive/calls/speaker{i // PER_SPEAKER:07d}/"
                                    f"rec{i % PER_SPEAKER:02d}.wav", 50_000 + i % 977)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    plan = Plan(listing(), iter(()), 256, {"model_id": "bench"},
                lambda uri: uri.rsplit("/", 1)[0], 256)
    parts = files = waves = 0
    for wave_ in plan.waves():
        waves += 1
        parts += len(wave_.parts)
        files += sum(len(p.uris) for p in wave_.parts)
    return {"entries": n, "files": files, "parts": parts, "waves": waves,
            "seconds": time.perf_counter() - start,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "import_mib": before / 1024}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.label_scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "emoray-bench-scale"))
    p.add_argument("--files", type=int, nargs="*", default=[10_000, 100_000])
    p.add_argument("--plan", type=int, default=10_000_000, help="entries to plan; 0: none")
    p.add_argument("--model", default="models/audio-speech18.pt")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--plan-child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.plan_child:
        print(json.dumps(plan_only(args.plan_child)))
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.files:
        src, out = archive(work, n), work / f"labels-{n}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "emoray", "label", "--model", args.model, "--input",
               str(src), "--output", str(out), "--num-cpus", str(args.cpus)]
        peak, secs = driver_run(cmd)
        rows.append((f"{n} files", n, peak, secs))
        print(f"benchmarks.label_scale: {n} files: driver peak {peak:.0f} MiB, {secs:.1f} s",
              flush=True)
        if n == max(args.files):
            peak, secs = driver_run(cmd)
            rows.append((f"{n} files, re-run, all done", n, peak, secs))
    print(f"\nemoray label driver at scale: {args.cpus} CPUs, model {args.model}, folders of "
          f"{PER_SPEAKER} hard links of {clip(work).name}")
    print(f"{'run':<32}{'files':>9}{'driver peak MiB':>17}{'seconds':>10}{'files/s':>9}")
    for name, n, peak, secs in rows:
        print(f"{name:<32}{n:>9}{peak:>17.0f}{secs:>10.1f}{n / secs:>9.1f}")
    labelled = [r for r in rows if "re-run" not in r[0]]
    if len(labelled) >= 2:
        (_, n0, p0, s0), (_, n1, p1, s1) = labelled[0], labelled[-1]
        print(f"driver peak {n1} / {n0}: {p1 / p0:.2f} (target <= 1.20); files/s {n1} / {n0}: "
              f"{(n1 / s1) / (n0 / s0):.2f} (target >= 1.00); wall includes start-up")
    if args.plan:
        out = subprocess.run([sys.executable, "-m", "benchmarks.label_scale",
                              "--plan-child", str(args.plan)], check=True,
                             capture_output=True, text=True)
        r = json.loads(out.stdout.splitlines()[-1])
        print(f"\nplanning only, {r['entries']} synthetic entries in folders of {PER_SPEAKER}: "
              f"{r['parts']} parts in {r['waves']} waves, {r['seconds']:.0f} s "
              f"({r['entries'] / r['seconds']:.0f} entries/s), peak RSS {r['peak_mib']:.0f} MiB "
              f"({r['import_mib']:.0f} MiB after imports; target < 2048 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
