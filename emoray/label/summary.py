"""What a labels output holds, aggregated a few committed parts at a time, in memory that does
not grow with the archive (``summarise``); the label report (``emoray.label.report``) is drawn
from it.

Counts by modality and label, a histogram of each file's top probability, the longest
recordings labelled in windows with their window rows, errors by stage and reason, files by
speaker. Groupings that can be as many as the files (speakers, error reasons) are counted
exactly: each chunk's partial counts are spilled to local files by a hash of their key and
reduced a bucket at a time (``Tally``), as ``emoray.label.plan`` plans an archive.
"""

from __future__ import annotations

import heapq
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from emoray.label.parts import iter_output
from emoray.label.plan import BUCKETS, bucket
from emoray.label.schema import PROB_COLUMNS

CONFIDENCE_BINS = 10_000  # of the top probability: medians to within 1 / 20,000
TIMELINES = 3  # recordings labelled in windows whose window rows are kept, longest first
SPEAKERS = 15  # speakers kept, most files first
REASONS = 3  # reasons kept per stage, most files first


@dataclass(frozen=True)
class Recording:
    """A recording labelled in windows: its file row's fields and its window rows by time."""
    uri: str
    duration_s: float
    modality: str
    label: str
    windows: pa.Table


@dataclass(frozen=True)
class Speaker:
    speaker: str
    files: int
    clips: tuple[int, int] | None  # least and most speaker_clips of its labels (None: none)
    labels: Counter


@dataclass(frozen=True)
class Reason:
    reason: str
    files: int
    example: str  # the first URI (in sort order) that failed so


@dataclass
class Summary:
    files: int = 0  # file rows (a recording in windows counts once)
    windows: int = 0  # window rows
    windowed: int = 0  # recordings labelled in windows
    errors: int = 0
    labels: dict[str, Counter] = field(default_factory=dict)  # modality -> label -> files
    confidence: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> histogram
    models: set[str] = field(default_factory=set)
    versions: set[str] = field(default_factory=set)
    first: datetime | None = None  # committed, earliest and latest part
    last: datetime | None = None
    recordings: list[Recording] = field(default_factory=list)  # TIMELINES longest, longest first
    stages: Counter = field(default_factory=Counter)  # stage -> errors
    reasons: dict[str, list[Reason]] = field(default_factory=dict)  # stage -> REASONS most files
    other_reasons: dict[str, tuple[int, int]] = field(default_factory=dict)  # stage -> (n, files)
    speakers: int = 0  # distinct speakers named by the label rows
    top_speakers: list[Speaker] = field(default_factory=list)  # SPEAKERS most files


def summarise(output: str, parts_at_a_time: int = 64) -> Summary:
    """The summary of ``output``'s committed parts, read ``parts_at_a_time`` at a time."""
    s = Summary()
    speakers = Tally(["speaker", "label"], ["speaker"],
                     {"n": "sum", "clips_min": "min", "clips_max": "max"})
    reasons = Tally(["stage", "reason"], ["stage", "reason"], {"n": "sum", "uri": "min"})
    kept = kept_windows = None  # the longest recordings in windows so far, their windows
    with speakers, reasons:
        for labels, errors in iter_output(output, parts_at_a_time):
            is_window = pc.is_valid(labels["window_start_s"])
            files, windows = labels.filter(pc.invert(is_window)), labels.filter(is_window)
            _count_labels(s, files)
            _stamps(s, files, errors)
            s.windows += len(windows)
            s.windowed += pc.count_distinct(windows["uri"]).as_py()
            windowed = files.filter(pc.is_in(files["uri"], value_set=pc.unique(windows["uri"])))
            kept = _concat(kept, windowed.select(["uri", "duration_s", "modality", "label"]))
            kept = kept.take(_longest(kept)[:TIMELINES])
            kept_windows = _concat(kept_windows, windows)
            kept_windows = kept_windows.filter(pc.is_in(kept_windows["uri"],
                                                        value_set=kept["uri"]))
            if "speaker" in files.column_names:
                named = files.filter(pc.is_valid(files["speaker"]))
                clips = (named["speaker_clips"] if "speaker_clips" in named.column_names
                         else pa.nulls(len(named), pa.int32()))
                speakers.add(pa.table({"speaker": named["speaker"], "label": named["label"],
                                       "n": pa.array(np.ones(len(named), np.int64)),
                                       "clips_min": clips, "clips_max": clips}))
            s.errors += len(errors)
            s.stages.update(Counter(errors["stage"].to_pylist()))
            reasons.add(pa.table({"stage": errors["stage"], "reason": errors["reason"],
                                  "n": pa.array(np.ones(len(errors), np.int64)),
                                  "uri": errors["uri"]}))
        s.recordings = [Recording(r["uri"], r["duration_s"], r["modality"], r["label"],
                                  kept_windows.filter(pc.equal(kept_windows["uri"], r["uri"]))
                                  .sort_by("window_start_s"))
                        for r in (kept.to_pylist() if kept is not None else [])]
        _speakers(s, speakers.reduced())
        _reasons(s, reasons.reduced())
    return s


def top_probability(rows: pa.Table) -> np.ndarray:
    return np.max(probabilities(rows), axis=1) if len(rows) else np.zeros(0)


def probabilities(rows: pa.Table) -> np.ndarray:
    """float [rows, 8]: the rows' class probabilities."""
    return np.stack([rows[c].to_numpy(zero_copy_only=False) for c in PROB_COLUMNS], axis=1)


def median(hist: np.ndarray) -> float:
    """The median of the values a ``CONFIDENCE_BINS`` histogram of [0, 1] counts (bin centres)."""
    n = int(hist.sum())
    cum = np.cumsum(hist)
    middle = np.searchsorted(cum, [(n - 1) // 2 + 1, n // 2 + 1])  # bins of the middle ranks
    return float(np.mean((middle + 0.5) / len(hist)))


def _count_labels(s: Summary, files: pa.Table) -> None:
    counts = files.group_by(["modality", "label"]).aggregate([([], "count_all")])
    for m, label, n in zip(*(counts[c].to_pylist() for c in ("modality", "label", "count_all"))):
        s.labels.setdefault(m, Counter())[label] += n
    s.files += len(files)
    top = top_probability(files)
    bins = np.minimum((top * CONFIDENCE_BINS).astype(np.int64), CONFIDENCE_BINS - 1)
    modality = files["modality"].to_numpy(zero_copy_only=False)
    for m in set(modality):
        s.confidence[m] = (s.confidence.get(m, 0)
                           + np.bincount(bins[modality == m], minlength=CONFIDENCE_BINS))


def _stamps(s: Summary, *tables: pa.Table) -> None:
    for t in tables:
        if not len(t):
            continue
        s.models.update(v for v in pc.unique(t["model_id"]).to_pylist() if v is not None)
        s.versions.update(v for v in pc.unique(t["emoray_version"]).to_pylist() if v is not None)
        times = pc.min_max(t["processed_at"]).as_py()
        s.first = min(filter(None, (s.first, times["min"])), default=None)
        s.last = max(filter(None, (s.last, times["max"])), default=None)


def _longest(recordings: pa.Table) -> np.ndarray:
    """Row order of ``recordings``, longest first (then by URI)."""
    return pc.sort_indices(pa.table({"d": pc.negate(recordings["duration_s"]),
                                     "uri": recordings["uri"]}),
                           [("d", "ascending"), ("uri", "ascending")]).to_numpy()


def _concat(kept: pa.Table | None, more: pa.Table) -> pa.Table:
    return more if kept is None else pa.concat_tables([kept, more], promote_options="default")


def _speakers(s: Summary, buckets: Iterator[pa.Table]) -> None:
    """Distinct speakers and the ``SPEAKERS`` with most files, a bucket at a time."""
    top: list[tuple[int, str, Speaker]] = []
    for t in buckets:
        per = t.group_by("speaker").aggregate([("n", "sum")])
        s.speakers += len(per)
        order = pc.sort_indices(per, [("n_sum", "descending"), ("speaker", "ascending")])
        for name in per.take(order[:SPEAKERS])["speaker"].to_pylist():
            mine = t.filter(pc.equal(t["speaker"], name))
            low, high = pc.min(mine["clips_min"]).as_py(), pc.max(mine["clips_max"]).as_py()
            speaker = Speaker(name, pc.sum(mine["n"]).as_py(),
                              None if low is None else (low, high),
                              Counter(dict(zip(mine["label"].to_pylist(),
                                               mine["n"].to_pylist()))))
            heapq.heappush(top, (speaker.files, _descending(name), speaker))
            if len(top) > SPEAKERS:
                heapq.heappop(top)
    s.top_speakers = [sp for _, _, sp in sorted(top, reverse=True)]


def _reasons(s: Summary, buckets: Iterator[pa.Table]) -> None:
    """Per stage: the ``REASONS`` reasons with most files, and how many others, how often."""
    every: dict[str, list[Reason]] = {}
    counts: Counter = Counter()
    for t in buckets:
        for stage, reason, n, uri in zip(*(t[c].to_pylist() for c in ("stage", "reason", "n",
                                                                       "uri"))):
            counts[stage] += 1
            kept = every.setdefault(stage, [])
            kept.append(Reason(reason, n, uri))
            kept.sort(key=lambda r: (-r.files, r.reason))
            del kept[REASONS:]
    s.reasons = every
    s.other_reasons = {st: (counts[st] - len(r), s.stages[st] - sum(x.files for x in r))
                       for st, r in every.items() if counts[st] > len(r)}


class _descending(str):
    """A string that sorts in reverse (so the heap keeps the first names of equal counts)."""

    def __lt__(self, other):
        return str.__gt__(self, other)


class Tally:
    """Exact group-by aggregates of a stream of tables (``add``) in bounded memory: rows go to
    ``BUCKETS`` local spill files by a hash of their ``bucket_by`` columns and are reduced a
    bucket at a time (``reduced``: per bucket, one row per ``keys`` with ``values``'
    aggregates under their own names). Use as a context manager: its files go at the end."""

    def __init__(self, keys: list[str], bucket_by: list[str], values: dict[str, str]):
        self.keys, self.bucket_by, self.values = keys, bucket_by, values
        self._tmp = tempfile.TemporaryDirectory(prefix="emoray-tally-")
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}

    def __enter__(self) -> Tally:
        return self

    def __exit__(self, *exc) -> None:
        self._close()
        self._tmp.cleanup()

    def add(self, rows: pa.Table) -> None:
        if not len(rows):
            return
        partial = self._reduce(rows)
        names = zip(*(partial[c].to_pylist() for c in self.bucket_by))
        buckets = np.array([bucket("\0".join(k)) for k in names], np.int64)
        order = np.argsort(buckets, kind="stable")
        partial, buckets = partial.take(order), buckets[order]
        for b, start, n in zip(*np.unique(buckets, return_index=True, return_counts=True)):
            if b not in self._writers:
                self._writers[b] = pa.ipc.new_stream(self._path(b), partial.schema)
            self._writers[b].write_table(partial.slice(start, n))

    def reduced(self) -> Iterator[pa.Table]:
        self._close()
        for b in range(BUCKETS):
            if os.path.exists(self._path(b)):
                with pa.ipc.open_stream(self._path(b)) as reader:
                    yield self._reduce(reader.read_all())

    def _reduce(self, rows: pa.Table) -> pa.Table:
        out = rows.group_by(self.keys).aggregate(list(self.values.items()))
        names = {f"{c}_{f}": c for c, f in self.values.items()}
        return out.rename_columns([names.get(n, n) for n in out.column_names])

    def _path(self, b: int) -> str:
        return os.path.join(self._tmp.name, f"bucket-{b:03d}.arrow")

    def _close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()
