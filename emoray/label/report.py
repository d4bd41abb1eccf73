"""The label report of a labeling output, in ``<output>/report/``, built from its committed
Parquet parts alone (so ``emoray report --labels OUTPUT`` rebuilds it, also on ``s3://``).

``index.md`` (counts, tables, the figures), ``labels.png`` (the labels' spread per modality),
``confidence.png`` (histogram of each file's top probability), ``errors.png`` (failed files by
stage) and ``timeline-<k>.png`` (the 8 probabilities over time of the longest recordings
labelled in windows). Files of an earlier report that this one does not write are removed.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.ticker import MaxNLocator

from emoray import storage
from emoray.figures import plt, write_png
from emoray.label.parts import read_output
from emoray.label.schema import PROB_COLUMNS
from emoray.ravdess import EMOTIONS

REPORT_DIR = "report"
TIMELINES = 3  # recordings labelled in windows that get a timeline, longest first
SPEAKERS = 15  # speakers in the per-speaker table, most files first
STAGES = ("read", "probe", "decode", "audio", "video", "route", "label")  # pipeline order
MODALITIES = ("fusion", "audio", "video", "mixed")
EMOTION_COLORS = dict(zip(EMOTIONS, ("#8c8c8c", "#6fc6d9", "#f2b705", "#2f6fb3", "#d62728",
                                     "#8e5bb5", "#3a9a3a", "#f07c1a")))
MODALITY_COLORS = dict(zip(MODALITIES, ("#4c72b0", "#dd8452", "#55a868", "#8172b3")))


def write_report(output: str) -> str:
    """Write the report of ``output``'s committed parts; returns the URI of its ``index.md``."""
    labels, errors = read_output(output)
    where = storage.join(output, REPORT_DIR)
    files = labels.filter(pc.is_null(labels["window_start_s"]))
    windows = labels.filter(pc.is_valid(labels["window_start_s"]))
    figures = {}
    if len(files):
        figures["labels.png"] = plot_labels(files)
        figures["confidence.png"] = plot_confidence(files)
    if len(errors):
        figures["errors.png"] = plot_errors(errors)
    timelines = longest_windowed(files, windows, TIMELINES)
    for k, (row, rows) in enumerate(timelines, 1):
        figures[f"timeline-{k}.png"] = plot_timeline(row, rows)
    written = {storage.join(where, name) for name in [*figures, "index.md"]}
    for name, fig in figures.items():
        write_png(storage.join(where, name), fig)
    page = report_markdown(output, files, windows, errors, timelines)
    storage.write_bytes(storage.join(where, "index.md"), page.encode())
    for f in _listing(where):  # an earlier report's figures that this one has not
        if f not in written:
            storage.delete_file(f)
    return storage.join(where, "index.md")


def _listing(uri: str) -> list[str]:
    try:
        return [f.uri for f in storage.list_files(uri)]
    except FileNotFoundError:
        return []


def top_probability(rows: pa.Table) -> np.ndarray:
    return np.max(_probs(rows), axis=1) if len(rows) else np.zeros(0)


def _probs(rows: pa.Table) -> np.ndarray:
    return np.stack([rows[c].to_numpy(zero_copy_only=False) for c in PROB_COLUMNS], axis=1)


def label_counts(files: pa.Table) -> dict[str, Counter]:
    """modality -> Counter of labels, in ``MODALITIES`` order (then any other)."""
    out: dict[str, Counter] = {}
    counts = files.group_by(["modality", "label"]).aggregate([([], "count_all")])
    for m, label, n in zip(*(counts[c].to_pylist() for c in ("modality", "label", "count_all"))):
        out.setdefault(m, Counter())[label] += n
    return dict(sorted(out.items(), key=lambda kv: _order(kv[0], MODALITIES)))


def _order(name: str, known: tuple[str, ...]) -> tuple[int, str]:
    return (known.index(name) if name in known else len(known), name)


def longest_windowed(files: pa.Table, windows: pa.Table, n: int) -> list[tuple[dict, pa.Table]]:
    """The ``n`` longest recordings labelled in windows: (file row, its window rows by time)."""
    windowed = files.filter(pc.is_in(files["uri"], value_set=pc.unique(windows["uri"])))
    rows = sorted(windowed.select(["uri", "duration_s", "modality", "label"]).to_pylist(),
                  key=lambda r: (-r["duration_s"], r["uri"]))[:n]
    return [(r, windows.filter(pc.equal(windows["uri"], r["uri"])).sort_by("window_start_s"))
            for r in rows]


def plot_labels(files: pa.Table):
    counts = label_counts(files)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.8 / len(counts)
    x = np.arange(len(EMOTIONS))
    for i, (m, c) in enumerate(counts.items()):
        total = sum(c.values())
        ax.bar(x - 0.4 + width * (i + 0.5), [100 * c[e] / total for e in EMOTIONS], width,
               color=MODALITY_COLORS.get(m, "#999999"), label=f"{m} ({total:,} files)")
    ax.set_xticks(x, EMOTIONS)
    ax.set_xlabel("label (most probable emotion)")
    ax.set_ylabel("share of the modality's files (%)")
    ax.set_title(f"Labels of {len(files):,} files, by the modality they were labelled from")
    ax.legend(title="modality", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_confidence(files: pa.Table):
    top = top_probability(files)
    present = sorted(_distinct(files, "modality"), key=lambda m: _order(m, MODALITIES))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.hist([top[_is(files, "modality", m)] for m in present], bins=np.linspace(0, 1, 21),
            stacked=True, color=[MODALITY_COLORS.get(m, "#999999") for m in present], label=present)
    ax.axvline(1 / len(EMOTIONS), color="black", ls="--", lw=1, label="chance (1/8)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("top class probability (a recording in windows: of the windows' mean)")
    ax.set_ylabel("files")
    ax.set_title(f"Confidence of {len(files):,} file labels (median {np.median(top):.2f})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def error_stages(errors: pa.Table) -> Counter:
    return Counter(errors["stage"].to_pylist())


def plot_errors(errors: pa.Table):
    stages = sorted(error_stages(errors).items(), key=lambda kv: _order(kv[0], STAGES),
                    reverse=True)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(stages) + 1.4))
    bars = ax.barh([s for s, _ in stages], [n for _, n in stages], color="#c44e52")
    ax.bar_label(bars, [f"{n:,}" for _, n in stages], padding=3)
    ax.set_xlim(0, max(n for _, n in stages) * 1.15)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("files")
    ax.set_ylabel("stage that failed")
    ax.set_title(f"{len(errors):,} files not labelled, by stage")
    fig.tight_layout()
    return fig


def plot_timeline(row: dict, windows: pa.Table):
    """Each window's probabilities, stacked, over the stretch nearer its centre than any other's
    (with ``hop_s == window_s``: the window itself)."""
    start = windows["window_start_s"].to_numpy(zero_copy_only=False)
    end = windows["window_end_s"].to_numpy(zero_copy_only=False)
    centre = (start + end) / 2
    edges = np.concatenate([[start[0]], (centre[1:] + centre[:-1]) / 2, [end[-1]]])
    probs = _probs(windows)
    scale, unit = (60.0, "min") if row["duration_s"] > 600 else (1.0, "s")
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.stackplot(edges / scale, np.vstack([probs, probs[-1:]]).T, labels=EMOTIONS,
                 colors=[EMOTION_COLORS[e] for e in EMOTIONS], step="post")
    ax.set_xlim(edges[0] / scale, edges[-1] / scale)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("probability (stacked)")
    ax.set_title(_shorten(row["uri"].rsplit("/", 1)[-1], 60)
                 + f": {_duration(row['duration_s'])}, {len(windows):,} windows, "
                 f"file label {row['label']}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, reverse=True)
    fig.tight_layout()
    return fig


def report_markdown(output: str, files: pa.Table, windows: pa.Table, errors: pa.Table,
                    timelines: list[tuple[dict, pa.Table]]) -> str:
    n_windowed = len(pc.unique(windows["uri"]))
    lines = ["# Label report", "", f"Output: {_code(output, cell=False)}", "",
             f"**{_count(len(files) + len(errors), 'file')}**: {len(files):,} labelled "
             f"({n_windowed:,} of them in windows, {len(windows):,} window rows), "
             f"{len(errors):,} errors.", ""]
    stamps = pa.concat_tables([t.select(["model_id", "emoray_version", "processed_at"])
                               for t in (files, errors)])
    if len(stamps):
        times = pc.min_max(stamps["processed_at"]).as_py()
        models = ", ".join(_code(m, cell=False) for m in _distinct(stamps, "model_id"))
        lines += [f"Model {models}, emoray {', '.join(_distinct(stamps, 'emoray_version'))}; "
                  "parts committed "
                  f"{times['min']:%Y-%m-%d %H:%M} to {times['max']:%Y-%m-%d %H:%M} UTC.", ""]
    if len(files):
        lines += _labels_section(files)
    lines += _errors_section(errors)
    if timelines:
        lines += ["## Emotion over time", "",
                  (f"The {len(timelines)} longest of the {n_windowed:,} recordings labelled in "
                   "windows" if n_windowed > len(timelines) else
                   "The recordings labelled in windows, longest first")
                  + ": each window's 8 probabilities, stacked (they sum to 1).", ""]
        for k, (row, rows) in enumerate(timelines, 1):
            lines += [f"{_code(row['uri'], cell=False)}: {_duration(row['duration_s'])}, "
                      f"{len(rows):,} windows, file label **{row['label']}** ({row['modality']})",
                      "",
                      f"![emotion over time {k}](timeline-{k}.png)", ""]
    if "speaker" in files.column_names:
        lines += _speakers_section(files)
    return "\n".join(lines)


def _labels_section(files: pa.Table) -> list[str]:
    counts = label_counts(files)
    modalities = list(counts)
    lines = ["## Labels", "", "Files by label and by the modality they were labelled from "
             "(a recording in windows counts once, with its file label).", "",
             "![labels per modality](labels.png)", "",
             "| label | " + " | ".join(modalities) + " | all |",
             "|---|" + "---:|" * (len(modalities) + 1)]
    for e in EMOTIONS:
        row = [counts[m][e] for m in modalities]
        lines.append(f"| {e} | " + " | ".join(f"{n:,}" for n in row) + f" | {sum(row):,} |")
    totals = [sum(counts[m].values()) for m in modalities]
    lines += ["| **all** | " + " | ".join(f"{n:,}" for n in totals) + f" | {sum(totals):,} |",
              ""]
    top = top_probability(files)
    lines += ["## Confidence", "", "![top probability](confidence.png)", "",
              "| modality | files | median top probability | top probability below 0.5 |",
              "|---|---:|---:|---:|"]
    for m in [*modalities, "all"]:
        t = top if m == "all" else top[_is(files, "modality", m)]
        lines.append(f"| {m} | {len(t):,} | {np.median(t):.2f} | {np.mean(t < 0.5):.0%} |")
    return lines + [""]


def _errors_section(errors: pa.Table) -> list[str]:
    if not len(errors):
        return ["## Errors", "", "No errors.", ""]
    lines = ["## Errors", "", "![errors by stage](errors.png)", "",
             "| stage | files | reason | files with it | example |", "|---|---:|---|---:|---|"]
    rows = errors.select(["stage", "reason", "uri"]).to_pylist()
    for stage, n in sorted(error_stages(errors).items(), key=lambda kv: _order(kv[0], STAGES)):
        reasons = Counter(r["reason"] for r in rows if r["stage"] == stage)
        for i, (reason, k) in enumerate(reasons.most_common(3)):
            example = min(r["uri"] for r in rows if r["stage"] == stage and r["reason"] == reason)
            lines.append(f"| {stage if i == 0 else ''} | {f'{n:,}' if i == 0 else ''} | "
                         f"{_cell(_shorten(reason, 160))} | {k:,} | {_code(example)} |")
        if len(reasons) > 3:
            lines.append(f"| | | {len(reasons) - 3:,} other reasons | "
                         f"{n - sum(k for _, k in reasons.most_common(3)):,} | |")
    return lines + [""]


def _speakers_section(files: pa.Table) -> list[str]:
    files = files.filter(pc.is_valid(files["speaker"]))
    if not len(files):
        return []
    per = files.group_by("speaker").aggregate([([], "count_all")]).to_pylist()
    top = sorted(per, key=lambda r: (-r["count_all"], r["speaker"]))[:SPEAKERS]
    lines = ["## Speakers", "", f"The {len(top)} speakers with the most files "
             f"(of {len(per):,}); labels: the three most frequent, with their share.", "",
             "| speaker | files | speaker_clips | labels |", "|---|---:|---:|---|"]
    for r in top:
        mine = files.filter(pc.equal(files["speaker"], r["speaker"]))
        clips = _distinct(mine, "speaker_clips") if "speaker_clips" in mine.column_names else []
        spread = Counter(mine["label"].to_pylist()).most_common(3)
        lines.append(f"| {_code(r['speaker'])} | {len(mine):,} | "
                     f"{', '.join(map(str, clips)) or '-'} | "
                     + ", ".join(f"{e} {n / len(mine):.0%}" for e, n in spread) + " |")
    return lines + [""]


def _is(t: pa.Table, column: str, value) -> np.ndarray:
    """bool [rows]: where ``column`` equals ``value``."""
    return pc.fill_null(pc.equal(t[column], value), False).to_numpy(zero_copy_only=False)


def _distinct(t: pa.Table, column: str) -> list[str]:
    return sorted(v for v in pc.unique(t[column]).to_pylist() if v is not None)


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
