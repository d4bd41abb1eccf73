"""The label report, built from parts written by the labeling job's own writer, on a local
folder and on a real S3 server; ``emoray report --labels`` rebuilds it."""

import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from emoray import cli, storage
from emoray.label.parts import write_part
from emoray.label.report import write_report
from emoray.label.schema import PROB_COLUMNS
from emoray.ravdess import EMOTIONS

ERRORS = [("read", "empty file"), ("probe", "no audio or video stream"),
          ("probe", "no audio or video stream"), ("probe", "Invalid data found | (ffmpeg)"),
          ("route", "video-only file, but the model has no video branch")]
MODALITY = {"fusion": (True, True), "audio": (True, False), "video": (False, True)}


def _row(uri, modality, probs, duration, window=None):
    has_audio, has_video = MODALITY.get(modality, (True, True))
    return {"uri": uri, "sha256": "0" * 64, "size_bytes": 1000, "duration_s": duration,
            "window_start_s": None if window is None else window[0],
            "window_end_s": None if window is None else window[1], "modality": modality,
            "has_audio": has_audio, "has_video": has_video,
            "face_detected": True if has_video else None,
            "label": EMOTIONS[int(np.argmax(probs))],
            **{c: float(p) for c, p in zip(PROB_COLUMNS, probs)}}


def _recording(uri, duration, rng, hop=3.0):
    """A recording in windows: window rows whose emotions drift, and its file row (the mean)."""
    starts = np.arange(0, duration - hop + 1e-6, hop)
    phase = rng.uniform(0, 2 * np.pi, len(EMOTIONS))
    logits = 2.5 * np.sin(starts[:, None] / duration * 2 * np.pi * 3 + phase)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    windows = [_row(uri, "fusion", p, duration, (s, min(s + hop, duration)))
               for s, p in zip(starts, probs)]
    return [_row(uri, "fusion", probs.mean(0), duration)] + windows


def labels_output(out: str, seed: int = 0) -> dict:
    """An output of three committed parts: 60 clips, three recordings in windows and five
    error rows; returns what it holds."""
    rng = np.random.default_rng(seed)
    clips = []
    for i, modality in enumerate(["audio"] * 36 + ["fusion"] * 14 + ["video"] * 10):
        p = rng.dirichlet(np.full(len(EMOTIONS), 0.5))
        clips.append(_row(f"{out}/in/clip {i:02d}.wav", modality, p, 3.5))
    long = {"meeting 01.mp4": 45.0, "lecture.mp4": 1800.0, "call.mp4": 12.0}
    recordings = [r for name, d in long.items() for r in _recording(f"{out}/in/{name}", d, rng)]
    errors = [{"uri": f"{out}/in/bad {i}.bin", "stage": s, "reason": r, "size_bytes": 10}
              for i, (s, r) in enumerate(ERRORS)]
    write_part(out, "part-a", clips[:30], errors[:2], "m" * 16, {})
    write_part(out, "part-b", clips[30:], errors[2:], "m" * 16, {})
    write_part(out, "part-c", recordings, [], "m" * 16, {})
    files = clips + [r for r in recordings if r["window_start_s"] is None]
    return {"files": files, "windows": len(recordings) - len(long), "long": long,
            "errors": errors}


def report_files(out: str) -> dict[str, bytes]:
    where = storage.join(out, "report")
    return {f.uri.rsplit("/", 1)[-1]: storage.read_bytes(f.uri) for f in storage.list_files(where)}


def table(page: str, heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table after ``## heading``."""
    section = page.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows]


def check_report(out: str, held: dict) -> str:
    files = report_files(out)
    page = files["index.md"].decode()
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", page)
    assert sorted(figures) == sorted(n for n in files if n.endswith(".png"))
    assert set(figures) == {"labels.png", "confidence.png", "errors.png", "timeline-1.png",
                            "timeline-2.png", "timeline-3.png"}
    assert all(files[f][:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
    n_files = len(held["files"]) + len(held["errors"])
    assert (f"**{n_files} files**: {len(held['files'])} labelled (3 of them in windows, "
            f"{held['windows']} window rows), {len(held['errors'])} errors.") in page
    counts = Counter((r["modality"], r["label"]) for r in held["files"])
    rows = table(page, "Labels")
    header = page.split("## Labels\n", 1)[1].split("| label | ", 1)[1].split(" |\n")[0]
    modalities = header.split(" | ")[:-1]
    assert modalities == ["fusion", "audio", "video"]
    for e, row in zip(EMOTIONS, rows):
        assert row[0] == e and [int(n) for n in row[1:-1]] == [counts[m, e] for m in modalities]
    assert rows[-1][1:] == ["17", "36", "10", "63"]
    stages = {r[0]: int(r[1]) for r in table(page, "Errors") if r[0]}
    assert stages == {"read": 1, "probe": 3, "route": 1}
    assert "Invalid data found \\| (ffmpeg)" in page and "`" + out + "/in/bad 1.bin`" in page
    timelines = page.split("## Emotion over time\n", 1)[1]
    order = [timelines.index(f"/in/{name}`") for name in ("lecture.mp4", "meeting 01.mp4",
                                                         "call.mp4")]
    assert order == sorted(order)  # longest first
    assert "`" + out + "/in/lecture.mp4`: 30 min 00 s, 600 windows" in timelines
    return page


def test_report_of_a_local_output(tmp_path):
    out = str(tmp_path / "labels")
    held = labels_output(out)
    assert write_report(out) == f"{out}/report/index.md"
    page = check_report(out, held)
    assert "## Speakers" not in page
    top = [max(r[c] for c in PROB_COLUMNS) for r in held["files"]]
    (all_row,) = [r for r in table(page, "Confidence") if r[0] == "all"]
    assert all_row == ["all", "63", f"{np.median(top):.2f}", f"{np.mean(np.less(top, 0.5)):.0%}"]


def test_report_rebuilt_from_s3_by_the_command(s3, capsys):
    out = f"s3://{s3.bucket}/report-labels"
    held = labels_output(out)
    assert cli.main(["report", "--labels", out]) == 0
    assert capsys.readouterr().out.strip() == f"emoray report: {out}/report/index.md"
    first = report_files(out)
    check_report(out, held)
    storage.write_bytes(f"{out}/report/timeline-9.png", b"left by an earlier report")
    assert cli.main(["report", "--labels", out]) == 0  # idempotent: the same files again
    again = report_files(out)
    assert again.keys() == first.keys() and again["index.md"] == first["index.md"]


def test_report_command_refuses_what_is_not_a_labels_output(tmp_path, capsys):
    assert cli.main(["report", "--labels", str(tmp_path)]) == 2
    assert "no labels/ parts under" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_speaker_table_when_rows_name_speakers(tmp_path):
    out = str(tmp_path / "labels")
    held = labels_output(out)
    names = dict(zip([r["uri"] for r in held["files"]], ["alice"] * 5 + ["bob"] * 3))
    for part in storage.list_files(f"{out}/labels"):  # rows of a job that names speakers
        t = pq.read_table(part.uri)
        speaker = [names.get(u) for u in t["uri"].to_pylist()]
        clips = [{"alice": 40, "bob": 12}.get(n) for n in speaker]
        for name, values in (("speaker", speaker), ("speaker_clips", clips)):
            i = t.schema.get_field_index(name)
            t = t.set_column(i, t.schema.field(i), pa.array(values, t.schema.field(i).type))
        pq.write_table(t, part.uri)
    page = open(write_report(out)).read()
    body = table(page, "Speakers")
    assert [r[:3] for r in body] == [["`alice`", "5", "40"], ["`bob`", "3", "12"]]
    alice = Counter(r["label"] for r in held["files"][:5]).most_common(1)[0]
    assert body[0][3].startswith(f"{alice[0]} {alice[1] / 5:.0%}")


def test_report_of_an_output_without_labels(tmp_path):
    out = str(tmp_path / "labels")
    write_part(out, "part-e", [], [{"uri": "x", "stage": "read", "reason": "empty file",
                                    "size_bytes": 0}], "m" * 16, {})
    page = open(write_report(out)).read()
    assert "**1 file**: 0 labelled" in page and "## Labels" not in page
    assert sorted(report_files(out)) == ["errors.png", "index.md"]
