"""Labeling throughput against preprocessing alone, and peak memory against archive size.

Throughput, on the same local Ray in the same run, best of ``--rounds`` interleaved rounds:
files/s of ``run_label`` end to end (list, decode + features, model actors, commit to a fresh
output) beside a floor. Two archives against the job's decode + feature stage alone
(``prepare_part`` over the same files, no model): the synthetic one x10 (mostly audio, 320x180
video) and, when the real data is there, the six real 1280x720 RAVDESS videos x20. And, when
the real speech and the shipped speech model (``make speech-model``) are there, the 1080 real
speech files labelled with that model (its speaker statistics and heads) against ``emoray
preprocess`` of the same files (``run_preprocess`` to a fresh output). The model's own compute is reported
too: "model share" is its single-thread compute for the items labelled over the CPU time
preprocessing alone took (wall x CPUs), the extra work a CPU-only cluster must do for it.

Memory: peak proportional set size (PSS: shared object-store pages counted once) of a whole
``emoray label`` process tree (driver, its local Ray, workers) for the synthetic archive and
for one 10x larger (the same files under ten folders), and for one 6-minute and one 60-minute
recording (windows, stream-decoded).

    python -m benchmarks.label [--work DIR] [--cpus 2] [--rounds 2] [--no-memory] [key=value ...]

The synthetic archive: two actors' 120 audio-only WAVs plus 32 video-only and full-AV MP4s at
320x180 (kept in ``--work``); the model: an untrained paper-preset fusion artifact (the cost of
a trained one). ``key=value`` are label config overrides for every run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads

from emoray import storage
from emoray.artifact import load_model, save_model
from emoray.config import build, load_yaml
from emoray.features.config import preset
from emoray.label.config import DEFAULT_MODEL, LabelConfig
from emoray.label.job import prepare_dataset, run_label
from emoray.label.parts import plan_parts
from emoray.label.stage import predict
from emoray.models import (FusionHead, FusionNet, audio_config, audio_input, build_branch,
                           model_config)
from emoray.preprocess.job import PreprocessConfig, run_preprocess
from emoray.synth.corpus import synthesize_corpus

REAL = Path(os.environ.get("EMORAY_DATA") or Path(__file__).resolve().parents[2] / "shared/data")


def write_long_wav(path: Path, minutes: int, rate: int = 16000) -> Path:
    """A mono 16-bit WAV of a wandering tone, written second by second."""
    if not path.exists():
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            for second in range(60 * minutes):
                t = second + np.arange(rate) / rate
                w.writeframes((8000 * np.sin(2 * np.pi * (300 + 50 * np.sin(t)) * t))
                              .astype("<i2").tobytes())
    return path


def make_archive(work: Path) -> tuple[Path, Path, Path]:
    """(archive, 10x archive, model artifact), made once under ``work``."""
    base, big, model = work / "archive", work / "archive10", work / "fusion.pt"
    if not base.exists():
        tmp = work / "archive.tmp"
        synthesize_corpus(tmp, actors=(1, 2), modalities=("audio",))
        synthesize_corpus(tmp, actors=(1, 2), modalities=("video", "av"), emotions=(1, 3, 5, 6),
                          repetitions=(1,), intensities=(1,), width=320, height=180)
        tmp.rename(base)
    if not big.exists():
        for i in range(10):
            shutil.copytree(base, big / f"copy{i:02d}", copy_function=os.link)
    if not model.exists():
        import torch

        torch.manual_seed(0)
        f = preset("default")
        audio = build_branch("audio", model_config("audio", "paper"), f)
        video = build_branch("video", model_config("video", "paper"), f)
        head = FusionHead(model_config("fusion", "paper"), audio.embed_dim, video.embed_dim)
        save_model(str(model), FusionNet(audio, video, head), f)
    return base, big, model


def real_archive(work: Path) -> Path | None:
    """The six real RAVDESS videos x20 (hard links), or None without the real data."""
    src, out = REAL / "ravdess-video-actor05", work / "real20"
    if not src.is_dir():
        return None
    if not out.exists():
        for i in range(20):
            shutil.copytree(src, out / f"copy{i:02d}", copy_function=os.link)
    return out


def prepare_only(cfg: LabelConfig) -> float:
    """Seconds for the labeling job's decode + feature stage alone over ``cfg.input``."""
    start = time.perf_counter()
    _, info = load_model(cfg.model)
    parts = plan_parts(storage.list_files(cfg.input), cfg.files_per_part, {})
    for _ in prepare_dataset(parts, cfg, info.kind, info.features).iter_batches(
            batch_size=None, batch_format="pyarrow"):
        pass
    return time.perf_counter() - start


def preprocess_only(cfg: LabelConfig) -> float:
    """Seconds for ``emoray preprocess`` of ``cfg.input`` into a fresh ``cfg.output``."""
    shutil.rmtree(cfg.output, ignore_errors=True)
    start = time.perf_counter()
    run_preprocess(PreprocessConfig(input=cfg.input, output=cfg.output))
    return time.perf_counter() - start


def labeling(cfg: LabelConfig) -> float:
    start = time.perf_counter()
    run_label(cfg)
    return time.perf_counter() - start


def model_seconds(model_uri: str, labels: str, batch_size: int) -> float:
    """Single-thread seconds the model needs for the items labelled under ``labels``."""
    import torch

    torch.set_num_threads(1)
    model, info = load_model(model_uri)
    rows = pads.dataset(labels, format="parquet").to_table(columns=["modality"]).to_pylist()
    counts = Counter(r["modality"] for r in rows)
    f, total = info.features, 0.0
    audio_in = audio_input(audio_config(model), f.audio)
    clip = np.random.rand(*f.audio.shape).astype(np.float32)
    if audio_in is not None and not audio_in.identity:
        clip = audio_in(clip)  # an ensemble's joined input
    for modality, n in counts.items():
        audio = [clip] * batch_size
        video = [np.random.randint(0, 255, f.video.shape, dtype=np.uint8)] * batch_size
        args = (model, info.kind, [modality] * batch_size, audio, video)
        predict(*args)
        start = time.perf_counter()
        predict(*args)
        total += (time.perf_counter() - start) / batch_size * n
    return total


def _children() -> dict[int, list[int]]:
    """ppid -> pids of every process (from /proc; Linux)."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(entry))
    return out


def _tree_pss(root: int) -> int:
    """Summed proportional set size (bytes) of ``root`` and its descendants."""
    children, todo, total = _children(), [root], 0
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in rollup.splitlines()
                      if line.startswith("Pss:")) * 1024
    return total


def peak_memory(cmd: list[str], env: dict) -> tuple[float, float]:
    """(peak PSS of the process tree in MiB, seconds) of running ``cmd``."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    peak, start = 0, time.perf_counter()
    while proc.poll() is None:
        peak = max(peak, _tree_pss(proc.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode})")
    return peak / 2**20, seconds


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.label", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "emoray-bench-label"))
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-memory", action="store_true", help="throughput only")
    p.add_argument("overrides", nargs="*", help="label config overrides, key=value")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base, big, model = make_archive(work)
    # name -> (input, model, floor)
    archives = {"synthetic x10 (WAV + 320x180 MP4)": (big, model, prepare_only)}
    if (real := real_archive(work)) is not None:
        archives["real RAVDESS 1280x720 MP4 x20"] = (real, model, prepare_only)
    speech, speech_model = REAL / "ravdess-speech-16k", Path(DEFAULT_MODEL).resolve()
    if speech.is_dir() and speech_model.exists():
        archives["real speech 16 kHz WAV, speech model"] = (speech, speech_model,
                                                            preprocess_only)
    else:
        print(f"benchmarks.label: no real speech or no {DEFAULT_MODEL} (make speech-model): "
              "the speech row is left out")

    def config(src: Path, out: Path, model_uri: Path = model) -> LabelConfig:
        data = load_yaml(None, args.overrides)
        return build(LabelConfig, {**data, "model": str(model_uri), "input": str(src),
                                   "output": str(out)})

    import ray

    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False,
             configure_logging=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in archives}
    try:
        for r in range(args.rounds):
            for i, (name, (src, net, floor)) in enumerate(archives.items()):
                out = work / f"labels-{i}"
                shutil.rmtree(out, ignore_errors=True)
                times[name].append((floor(config(src, work / "floor", net)),
                                    labeling(config(src, out, net))))
                print(f"benchmarks.label: round {r + 1}, {name}: floor {times[name][-1][0]:.1f} "
                      f"s, labeling {times[name][-1][1]:.1f} s", flush=True)
    finally:
        ray.shutdown()
    batch = config(base, work).batch_size
    throughput = []
    for i, (name, (src, net, _)) in enumerate(archives.items()):
        n = len(storage.list_files(str(src)))
        prep, label = (min(col) for col in zip(*times[name]))
        model_cpu = model_seconds(str(net), str(work / f"labels-{i}" / "labels"), batch)
        throughput.append((name, n, n / prep, n / label, prep / label,
                           model_cpu / (prep * args.cpus)))

    _print_throughput(args, throughput)
    if not args.no_memory:
        _print_memory(args, work, base, big, model)
    return 0


def _print_throughput(args, throughput: list[tuple]) -> None:
    print(f"\nemoray label benchmark: {args.cpus} CPUs, best of {args.rounds} rounds; "
          f"overrides: {' '.join(args.overrides) or 'none'}")
    print(f"{'throughput':<38}{'files':>6}{'floor f/s':>10}{'label f/s':>11}{'ratio':>7}"
          f"{'model share':>13}")
    for name, n, prep, label, ratio, share in throughput:
        print(f"{name:<38}{n:>6}{prep:>10.1f}{label:>11.1f}{ratio:>7.2f}{share:>13.2f}")
    print("ratio: labeling / floor files/s (target >= 0.80); floor: the job's decode + features "
          "alone, or for speech `emoray preprocess`; model share: the model's CPU time / the "
          "floor's")


def _print_memory(args, work: Path, base: Path, big: Path, model: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray
    for minutes in (6, 60):
        (work / f"long{minutes}").mkdir(exist_ok=True)
        write_long_wav(work / f"long{minutes}" / "recording.wav", minutes)
    memory = {}
    for name, src in (("synthetic x1", base), ("synthetic x10", big),
                      ("one 6 min WAV", work / "long6"), ("one 60 min WAV", work / "long60")):
        out = work / f"labels-mem-{name.replace(' ', '-')}"
        shutil.rmtree(out, ignore_errors=True)
        memory[name] = (len(storage.list_files(str(src))), *peak_memory(
            [sys.executable, "-m", "emoray", "label", "--model", str(model), "--input", str(src),
             "--output", str(out), "--num-cpus", str(args.cpus), *args.overrides], env))

    print(f"\n{'emoray label CLI, peak memory':<36}{'files':>6}{'seconds':>10}{'peak MiB':>11}")
    for name, (n, peak, secs) in memory.items():
        print(f"{name:<36}{n:>6}{secs:>10.1f}{peak:>11.0f}")
    print("(a fresh process with its own local Ray, start-up included; PSS of its whole tree)")
    print(f"peak memory x10 / x1: {memory['synthetic x10'][1] / memory['synthetic x1'][1]:.2f} "
          f"(target <= 1.20); 60 min / 6 min: "
          f"{memory['one 60 min WAV'][1] / memory['one 6 min WAV'][1]:.2f}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
