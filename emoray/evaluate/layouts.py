"""A trained fold run in every archive layout and recording condition (``make layouts``).

Each fold's test actors' files are laid out as archives a user might hold: one folder per
speaker, every file alone, all of them in one folder, 8 random clips per speaker, each speaker
with only 3 of the 8 emotions; and, one folder per speaker and alone, recorded otherwise:
20 dB quieter, 20 dB louder, through an 8 kHz telephone band, with white noise at 20 dB SNR.
A ``uri,speaker`` table says who speaks in each copy, so one labeling run per fold (the fold's
model, the labeling job as users run it) labels every layout; the labels are scored per
layout against the RAVDESS names, and the gain conditions also against the labels of the
unchanged files in the same layout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.csv
import torch
import torchaudio.functional as AF

from emoray.features.audio import decode_audio
from emoray.label.config import LabelConfig
from emoray.label.job import run_label
from emoray.label.parts import read_output
from emoray.ravdess import EMOTIONS, parse_name
from emoray.train.metrics import confusion, scores

RATE = 16000
LAYOUTS = ("speaker folders", "alone", "one folder", "8 per speaker", "3 emotions")
CONDITIONS = ("quiet -20 dB", "loud +20 dB", "telephone 8 kHz", "noise 20 dB SNR")
CONDITION_LAYOUTS = ("speaker folders", "alone")


def plan(files: list[Path], seed: int) -> list[dict]:
    """Copies of ``files`` (RAVDESS-named, of a few actors) for every layout and condition:
    ``layout``, ``condition`` (None: as recorded), ``source``, ``path`` (relative), ``speaker``."""
    rng = np.random.default_rng(seed)
    by_actor: dict[int, list[Path]] = {}
    for f in sorted(files):
        by_actor.setdefault(parse_name(f.name).actor, []).append(f)
    out = []

    def add(layout, condition, source, group):
        slug = "-".join(x.replace(" ", "_").replace("+", "") for x in (layout, condition) if x)
        name = source.name if condition is None else source.stem + ".wav"
        rel = f"{slug}/{group}/{name}" if group else f"{slug}/{source.stem}/{name}"
        out.append({"layout": layout, "condition": condition, "source": str(source),
                    "path": rel, "speaker": f"{slug}/{group}" if group else rel})

    for actor, clips in by_actor.items():
        group = f"speaker_{actor:02d}"
        for f in clips:
            add("speaker folders", None, f, group)
            add("alone", None, f, None)
            add("one folder", None, f, "all")
            for cond in CONDITIONS:
                add("speaker folders", cond, f, group)
                add("alone", cond, f, None)
        for f in rng.choice(clips, size=min(8, len(clips)), replace=False):
            add("8 per speaker", None, f, group)
        emotions = set(rng.choice(sorted({parse_name(f.name).emotion for f in clips}), 3,
                                  replace=False).tolist())
        for f in clips:
            if parse_name(f.name).emotion in emotions:
                add("3 emotions", None, f, group)
    return out


def recorded_as(wave: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """``wave`` (mono, 16 kHz) as recorded in ``condition``."""
    if condition == "quiet -20 dB":
        return wave * 0.1
    if condition == "loud +20 dB":
        return wave * 10.0
    if condition == "telephone 8 kHz":
        x = AF.resample(torch.from_numpy(wave)[None], RATE, 8000)
        x = AF.lowpass_biquad(AF.highpass_biquad(x, 8000, 300.0), 8000, 3400.0)
        return AF.resample(x, 8000, RATE)[0].numpy()
    if condition == "noise 20 dB SNR":
        rms = np.sqrt(np.mean(wave ** 2))
        return wave + rng.normal(0, rms / 10.0, wave.shape).astype(np.float32)
    raise ValueError(f"unknown condition {condition!r}")


def write_wav(path: Path, wave: np.ndarray) -> None:
    """Mono float32 WAV at 16 kHz (float, so +20 dB does not clip)."""
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_f32le", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave, np.float32)[None],
                                           format="flt", layout="mono")
        frame.sample_rate, frame.pts = RATE, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def build(copies: list[dict], root: Path, seed: int) -> Path:
    """Write the copies under ``root`` and their ``uri,speaker`` table; returns the table."""
    rng = np.random.default_rng(seed)
    for c in copies:
        dest = root / c["path"]
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if c["condition"] is None:
            shutil.copyfile(c["source"], dest)
        else:
            with open(c["source"], "rb") as f:
                wave = decode_audio(f, RATE)
            write_wav(dest, recorded_as(wave, c["condition"], rng))
    table = root / "speakers.csv"
    pyarrow.csv.write_csv(pa.table({"uri": [str(root / c["path"]) for c in copies],
                                    "speaker": [c["speaker"] for c in copies]}), table)
    return table


def score_layouts(copies: list[dict], root: Path, labels: pa.Table) -> dict:
    """Accuracy, UAR, the largest share one class takes of the predictions, and for
    conditions the share of labels equal to those of the same files as recorded."""
    got = {r["uri"]: r["label"] for r in labels.select(["uri", "window_start_s", "label"])
           .to_pylist() if r["window_start_s"] is None}
    base = {(c["layout"], c["source"]): got.get(str(root / c["path"]))
            for c in copies if c["condition"] is None}
    out = {}
    for key in [(lay, None) for lay in LAYOUTS] + [(lay, cond) for cond in CONDITIONS
                                                    for lay in CONDITION_LAYOUTS]:
        rows = [c for c in copies if (c["layout"], c["condition"]) == key
                and got.get(str(root / c["path"])) is not None]
        truth = [parse_name(Path(c["source"]).name).label for c in rows]
        pred = [EMOTIONS.index(got[str(root / c["path"])]) for c in rows]
        s = scores(confusion(truth, pred))
        top = Counter(pred).most_common(1)
        entry = {"n": len(rows), "accuracy": s["accuracy"], "uar": s["uar"],
                 "top_class_share": top[0][1] / len(rows) if top else 0.0}
        if key[1] is not None:
            same = [got[str(root / c["path"])] == base[(c["layout"], c["source"])]
                    for c in rows]
            entry["same_label"] = float(np.mean(same)) if same else 0.0
        out[" / ".join(k for k in key if k)] = entry
    return out


def run(run_dir: str, data: str, out: str, seed: int = 0, folds: int | None = None) -> dict:
    """Every fold (or the first ``folds``) of the training run ``run_dir`` (its
    ``splits.json`` and fold models) on copies of its test actors' files under ``data``."""
    splits = json.loads(Path(run_dir, "splits.json").read_text())[:folds]
    files = sorted(Path(data).rglob("03-*"))
    folds = {}
    for split in splits:
        actors = set(split["test_actors"])
        root = Path(out, split["name"]).resolve()
        copies = plan([f for f in files if parse_name(f.name).actor in actors], seed)
        table = build(copies, root / "files", seed)
        cfg = LabelConfig(input=str(root / "files"), output=str(root / "labels"),
                          model=str(Path(run_dir, "models", split["name"], "audio.pt")),
                          speakers=str(table))
        cfg.validate()
        run_label(cfg)
        folds[split["name"]] = score_layouts(copies, root / "files",
                                             read_output(cfg.output)[0])
        print(format_table({split["name"]: folds[split["name"]]}), flush=True)
    result = {"run": run_dir, "folds": folds}
    Path(out, "layouts.json").write_text(json.dumps(result, indent=2))
    return result


def format_table(folds: dict) -> str:
    """Markdown: a row per layout, mean ± std over folds and the per-fold accuracies."""
    names = list(next(iter(folds.values())))
    lines = ["| layout | accuracy (%) | UAR (%) | largest class share (%) | same label as "
             "recorded (%) | per-fold accuracy (%) |", "| --- | --- | --- | --- | --- | --- |"]
    for name in names:
        vals = {k: [f[name][k] for f in folds.values() if k in f[name]]
                for k in ("accuracy", "uar", "top_class_share", "same_label")}

        def ms(v):
            return f"{100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}" if v else ""
        per = " ".join(f"{100 * a:.1f}" for a in vals["accuracy"])
        top = f"{100 * max(vals['top_class_share']):.0f} (max)"
        lines.append(f"| {name} | {ms(vals['accuracy'])} | {ms(vals['uar'])} | {top} | "
                     f"{ms(vals['same_label'])} | {per} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emoray.evaluate.layouts", description=__doc__)
    p.add_argument("--run", default="out/runs/speech-folds", help="a fold run of emoray train")
    p.add_argument("--data", default="../shared/data/ravdess-speech-16k")
    p.add_argument("--out", default="out/layouts")
    p.add_argument("--folds", type=int, help="only the first N folds")
    p.add_argument("--num-cpus", type=int)
    args = p.parse_args(argv)
    from emoray.raycluster import init_ray
    init_ray(args.num_cpus)
    result = run(args.run, args.data, args.out, folds=args.folds)
    print(format_table(result["folds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
