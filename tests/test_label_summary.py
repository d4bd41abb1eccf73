"""The labels summary behind the report: read a few parts at a time, it is what the whole
output read at once says (speakers split over parts, error reasons, the longest recordings)."""

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from emoray.label.parts import read_output, write_part
from emoray.label.schema import PROB_COLUMNS
from emoray.label.summary import CONFIDENCE_BINS, Tally, median, summarise
from emoray.ravdess import EMOTIONS


def _file(uri, speaker, clips, rng, modality="audio", duration=3.0):
    p = rng.dirichlet(np.full(len(EMOTIONS), 0.4))
    return {"uri": uri, "sha256": "0" * 64, "size_bytes": 10, "duration_s": duration,
            "window_start_s": None, "window_end_s": None, "modality": modality,
            "has_audio": True, "has_video": modality != "audio", "face_detected": None,
            "speaker": speaker, "speaker_clips": clips, "label": EMOTIONS[int(np.argmax(p))],
            **{c: float(v) for c, v in zip(PROB_COLUMNS, p)}}


def _windows(row, n, rng):
    return [{**_file(row["uri"], row["speaker"], row["speaker_clips"], rng, row["modality"],
                     row["duration_s"]), "window_start_s": 3.0 * i, "window_end_s": 3.0 * i + 3}
            for i in range(n)]


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """Twelve parts: speakers of 1 to 30 files, one speaker split over three parts, recordings
    in windows in several parts, error reasons repeated across parts."""
    rng = np.random.default_rng(3)
    out = str(tmp_path_factory.mktemp("summary") / "labels")
    for k in range(12):
        rows, errors = [], []
        for j in range(int(rng.integers(1, 6))):
            name = f"spk{k:02d}{j}"
            n = int(rng.integers(1, 31))
            rows += [_file(f"{out}/in/{name}/{i:03d}.wav", name, n, rng) for i in range(n)]
        rows += [_file(f"{out}/in/host/{k:02d}-{i}.wav", "host", 40 + k % 3, rng, "fusion")
                 for i in range(15 if k < 3 else 0)]
        if k % 4 == 1:
            rec = _file(f"{out}/in/long-{k}.mp4", None, None, rng, "fusion", 30.0 + k)
            rows += [rec, *_windows(rec, 10 + k, rng)]
        errors += [{"uri": f"{out}/in/bad-{k}-{i}.bin", "stage": stage, "reason": reason,
                    "size_bytes": 1}
                   for i, (stage, reason) in enumerate(
                       [("probe", "no audio or video stream")] * (k % 3)
                       + [("read", f"unreadable {k % 5}"), ("decode", "Invalid data")])]
        write_part(out, f"part-{k:02d}", rows, errors, "m" * 16, {})
    return out


@pytest.mark.parametrize("at_a_time", [1, 5, 64])
def test_summary_read_in_chunks_is_the_whole_outputs(output, at_a_time):
    labels, errors = read_output(output)
    files = labels.filter(labels["window_start_s"].is_null()).to_pylist()
    windows = labels.filter(labels["window_start_s"].is_valid()).to_pylist()
    s = summarise(output, parts_at_a_time=at_a_time)
    assert (s.files, s.windows, s.errors) == (len(files), len(windows), len(errors))
    assert s.windowed == len({w["uri"] for w in windows}) == 3
    assert {m: dict(c) for m, c in s.labels.items()} == {
        m: dict(Counter(r["label"] for r in files if r["modality"] == m))
        for m in {r["modality"] for r in files}}
    top = np.array([max(r[c] for c in PROB_COLUMNS) for r in files])
    hist = sum(s.confidence.values())
    assert hist.sum() == len(files)
    assert median(hist) == pytest.approx(np.median(top), abs=1 / CONFIDENCE_BINS)
    per = Counter(r["speaker"] for r in files if r["speaker"] is not None)
    assert s.speakers == len(per)
    assert s.top_speakers[0].speaker == "host" and s.top_speakers[0].files == 45
    assert s.top_speakers[0].clips == (40, 42)  # one speaker over three parts
    assert s.top_speakers[0].labels == Counter(r["label"] for r in files
                                               if r["speaker"] == "host")
    expected = sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
    assert [(sp.speaker, sp.files) for sp in s.top_speakers] == expected
    longest = sorted({(r["duration_s"], r["uri"]) for r in windows}, reverse=True)
    assert [(r.duration_s, r.uri) for r in s.recordings] == longest
    for r in s.recordings:
        assert r.windows["window_start_s"].to_pylist() == [
            w["window_start_s"] for w in sorted(windows, key=lambda w: w["window_start_s"])
            if w["uri"] == r.uri]
    err = errors.to_pylist()
    assert s.stages == Counter(e["stage"] for e in err)
    reads = Counter(e["reason"] for e in err if e["stage"] == "read")
    assert [(x.reason, x.files) for x in s.reasons["read"]] == sorted(
        reads.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert s.other_reasons["read"] == (2, sum(sorted(reads.values())[:2]))
    assert s.reasons["decode"][0].example == min(e["uri"] for e in err
                                                 if e["reason"] == "Invalid data")


def test_tally_counts_exactly_over_its_buckets():
    rng = np.random.default_rng(0)
    keys = [f"k{i}" for i in rng.integers(0, 5000, 20_000)]
    values = rng.integers(0, 100, 20_000)
    with Tally(["key"], ["key"], {"v": "sum", "w": "max"}) as tally:
        for i in range(0, 20_000, 3000):  # partial chunks share keys
            tally.add(pa.table({"key": keys[i:i + 3000], "v": values[i:i + 3000],
                                "w": values[i:i + 3000]}))
        buckets = list(tally.reduced())
    assert 100 < len(buckets) <= 128
    got = pa.concat_tables(buckets).to_pylist()
    assert len(got) == len(set(keys))  # each key in one bucket, once
    sums, most = Counter(), Counter()
    for k, v in zip(keys, values):
        sums[k] += int(v)
        most[k] = max(most[k], int(v))
    assert {r["key"]: (r["v"], r["w"]) for r in got} == {k: (sums[k], most[k]) for k in sums}
