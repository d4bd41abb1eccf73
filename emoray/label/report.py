"""The label report of a labeling output, in ``<output>/report/``, built from its committed
Parquet parts alone (so ``emoray report --labels OUTPUT`` rebuilds it, also on ``s3://``).

``index.md`` (counts, tables, the figures), ``labels.png`` (the labels' spread per modality),
``confidence.png`` (histogram of each file's top probability), ``errors.png`` (failed files by
stage) and ``timeline-<k>.png`` (the 8 probabilities over time of the longest recordings
labelled in windows). Files of an earlier report that this one does not write are removed.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from emoray import storage
from emoray.figures import plt, write_png
from emoray.label.summary import (CONFIDENCE_BINS, Recording, Summary, median, probabilities,
                                  summarise)
from emoray.ravdess import EMOTIONS

REPORT_DIR = "report"
STAGES = ("read", "probe", "decode", "audio", "video", "route", "label")  # pipeline order
MODALITIES = ("fusion", "audio", "video", "mixed")
EMOTION_COLORS = dict(zip(EMOTIONS, ("#8c8c8c", "#6fc6d9", "#f2b705", "#2f6fb3", "#d62728",
                                     "#8e5bb5", "#3a9a3a", "#f07c1a")))
MODALITY_COLORS = dict(zip(MODALITIES, ("#4c72b0", "#dd8452", "#55a868", "#8172b3")))
HIST_BINS = 20  # of the confidence figure


def write_report(output: str) -> str:
    """Write the report of ``output``'s committed parts; returns the URI of its ``index.md``."""
    s = summarise(output)
    where = storage.join(output, REPORT_DIR)
    figures = {}
    if s.files:
        figures["labels.png"] = plot_labels(s)
        figures["confidence.png"] = plot_confidence(s)
    if s.errors:
        figures["errors.png"] = plot_errors(s)
    for k, rec in enumerate(s.recordings, 1):
        figures[f"timeline-{k}.png"] = plot_timeline(rec)
    written = {storage.join(where, name) for name in [*figures, "index.md"]}
    for name, fig in figures.items():
        write_png(storage.join(where, name), fig)
    storage.write_bytes(storage.join(where, "index.md"), report_markdown(output, s).encode())
    for f in _listing(where):  # an earlier report's figures that this one has not
        if f not in written:
            storage.delete_file(f)
    return storage.join(where, "index.md")


def _listing(uri: str) -> list[str]:
    try:
        return [f.uri for f in storage.list_files(uri)]
    except FileNotFoundError:
        return []


def _order(name: str, known: tuple[str, ...]) -> tuple[int, str]:
    return (known.index(name) if name in known else len(known), name)


def _modalities(s: Summary) -> list[str]:
    return sorted(s.labels, key=lambda m: _order(m, MODALITIES))


def plot_labels(s: Summary):
    modalities = _modalities(s)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.8 / len(modalities)
    x = np.arange(len(EMOTIONS))
    for i, m in enumerate(modalities):
        c = s.labels[m]
        total = sum(c.values())
        ax.bar(x - 0.4 + width * (i + 0.5), [100 * c[e] / total for e in EMOTIONS], width,
               color=MODALITY_COLORS.get(m, "#999999"), label=f"{m} ({total:,} files)")
    ax.set_xticks(x, EMOTIONS)
    ax.set_xlabel("label (most probable emotion)")
    ax.set_ylabel("share of the modality's files (%)")
    ax.set_title(f"Labels of {s.files:,} files, by the modality they were labelled from")
    ax.legend(title="modality", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_confidence(s: Summary):
    present = sorted(s.confidence, key=lambda m: _order(m, MODALITIES))
    edges = np.linspace(0, 1, HIST_BINS + 1)
    counts = [s.confidence[m].reshape(HIST_BINS, -1).sum(1) for m in present]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.hist([edges[:-1]] * len(present), bins=edges, weights=counts, stacked=True,
            color=[MODALITY_COLORS.get(m, "#999999") for m in present], label=present)
    ax.axvline(1 / len(EMOTIONS), color="black", ls="--", lw=1, label="chance (1/8)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("top class probability (a recording in windows: of the windows' mean)")
    ax.set_ylabel("files")
    ax.set_title(f"Confidence of {s.files:,} file labels (median {median(_all(s)):.2f})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _all(s: Summary) -> np.ndarray:
    return sum(s.confidence.values(), np.zeros(CONFIDENCE_BINS, np.int64))


def plot_errors(s: Summary):
    stages = sorted(s.stages.items(), key=lambda kv: _order(kv[0], STAGES), reverse=True)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(stages) + 1.4))
    bars = ax.barh([st for st, _ in stages], [n for _, n in stages], color="#c44e52")
    ax.bar_label(bars, [f"{n:,}" for _, n in stages], padding=3)
    ax.set_xlim(0, max(n for _, n in stages) * 1.15)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("files")
    ax.set_ylabel("stage that failed")
    ax.set_title(f"{s.errors:,} files not labelled, by stage")
    fig.tight_layout()
    return fig


def plot_timeline(rec: Recording):
    """Each window's probabilities, stacked, over the stretch nearer its centre than any other's
    (with ``hop_s == window_s``: the window itself)."""
    windows = rec.windows
    start = windows["window_start_s"].to_numpy(zero_copy_only=False)
    end = windows["window_end_s"].to_numpy(zero_copy_only=False)
    centre = (start + end) / 2
    edges = np.concatenate([[start[0]], (centre[1:] + centre[:-1]) / 2, [end[-1]]])
    probs = probabilities(windows)
    scale, unit = (60.0, "min") if rec.duration_s > 600 else (1.0, "s")
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.stackplot(edges / scale, np.vstack([probs, probs[-1:]]).T, labels=EMOTIONS,
                 colors=[EMOTION_COLORS[e] for e in EMOTIONS], step="post")
    ax.set_xlim(edges[0] / scale, edges[-1] / scale)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("probability (stacked)")
    ax.set_title(_shorten(rec.uri.rsplit("/", 1)[-1], 60)
                 + f": {_duration(rec.duration_s)}, {len(windows):,} windows, "
                 f"file label {rec.label}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, reverse=True)
    fig.tight_layout()
    return fig


def report_markdown(output: str, s: Summary) -> str:
    lines = ["# Label report", "", f"Output: {_code(output, cell=False)}", "",
             f"**{_count(s.files + s.errors, 'file')}**: {s.files:,} labelled "
             f"({s.windowed:,} of them in windows, {s.windows:,} window rows), "
             f"{s.errors:,} errors.", ""]
    if s.first is not None:
        models = ", ".join(_code(m, cell=False) for m in sorted(s.models))
        lines += [f"Model {models}, emoray {', '.join(sorted(s.versions))}; parts committed "
                  f"{s.first:%Y-%m-%d %H:%M} to {s.last:%Y-%m-%d %H:%M} UTC.", ""]
    if s.files:
        lines += _labels_section(s)
    lines += _errors_section(s)
    if s.recordings:
        n = len(s.recordings)
        lines += ["## Emotion over time", "",
                  (f"The {n} longest of the {s.windowed:,} recordings labelled in windows"
                   if s.windowed > n else "The recordings labelled in windows, longest first")
                  + ": each window's 8 probabilities, stacked (they sum to 1).", ""]
        for k, rec in enumerate(s.recordings, 1):
            lines += [f"{_code(rec.uri, cell=False)}: {_duration(rec.duration_s)}, "
                      f"{len(rec.windows):,} windows, file label **{rec.label}** "
                      f"({rec.modality})", "", f"![emotion over time {k}](timeline-{k}.png)", ""]
    if s.top_speakers:
        lines += _speakers_section(s)
    return "\n".join(lines)


def _labels_section(s: Summary) -> list[str]:
    modalities = _modalities(s)
    lines = ["## Labels", "", "Files by label and by the modality they were labelled from "
             "(a recording in windows counts once, with its file label).", "",
             "![labels per modality](labels.png)", "",
             "| label | " + " | ".join(modalities) + " | all |",
             "|---|" + "---:|" * (len(modalities) + 1)]
    for e in EMOTIONS:
        row = [s.labels[m][e] for m in modalities]
        lines.append(f"| {e} | " + " | ".join(f"{n:,}" for n in row) + f" | {sum(row):,} |")
    totals = [sum(s.labels[m].values()) for m in modalities]
    lines += ["| **all** | " + " | ".join(f"{n:,}" for n in totals) + f" | {sum(totals):,} |",
              "", "## Confidence", "", "![top probability](confidence.png)", "",
              "| modality | files | median top probability | top probability below 0.5 |",
              "|---|---:|---:|---:|"]
    for m in [*modalities, "all"]:
        hist = _all(s) if m == "all" else s.confidence[m]
        below = hist[:CONFIDENCE_BINS // 2].sum() / hist.sum()
        lines.append(f"| {m} | {hist.sum():,} | {median(hist):.2f} | {below:.0%} |")
    return lines + [""]


def _errors_section(s: Summary) -> list[str]:
    if not s.errors:
        return ["## Errors", "", "No errors.", ""]
    lines = ["## Errors", "", "![errors by stage](errors.png)", "",
             "| stage | files | reason | files with it | example |", "|---|---:|---|---:|---|"]
    for stage, n in sorted(s.stages.items(), key=lambda kv: _order(kv[0], STAGES)):
        for i, r in enumerate(s.reasons[stage]):
            lines.append(f"| {stage if i == 0 else ''} | {f'{n:,}' if i == 0 else ''} | "
                         f"{_cell(_shorten(r.reason, 160))} | {r.files:,} | "
                         f"{_code(r.example)} |")
        if stage in s.other_reasons:
            others, files = s.other_reasons[stage]
            lines.append(f"| | | {others:,} other reasons | {files:,} | |")
    return lines + [""]


def _speakers_section(s: Summary) -> list[str]:
    lines = ["## Speakers", "", f"The {len(s.top_speakers)} speakers with the most files "
             f"(of {s.speakers:,}); labels: the three most frequent, with their share.", "",
             "| speaker | files | speaker_clips | labels |", "|---|---:|---:|---|"]
    for sp in s.top_speakers:
        clips = ("-" if sp.clips is None else str(sp.clips[0]) if sp.clips[0] == sp.clips[1]
                 else f"{sp.clips[0]}-{sp.clips[1]}")
        spread = sorted(sp.labels.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        lines.append(f"| {_code(sp.speaker)} | {sp.files:,} | {clips} | "
                     + ", ".join(f"{e} {n / sp.files:.0%}" for e, n in spread) + " |")
    return lines + [""]


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min {s:02d} s"


def _shorten(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _code(text: str, cell: bool = True) -> str:
    """``text`` as inline code (in a table cell: its ``|`` escaped)."""
    text = text.replace("\n", " ")
    if cell:
        text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"
