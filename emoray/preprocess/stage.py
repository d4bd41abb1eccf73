"""Pure preprocessing stages: catalog -> shard specs -> one written shard. No Ray here."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field

import pyarrow.parquet as pq

from emoray import storage
from emoray.catalog import Trial
from emoray.errors import MIN_CLIP_S, MediaError, too_short
from emoray.features.audio import audio_features, decode_audio, peak_dbfs
from emoray.features.config import FeatureConfig
from emoray.features.video import video_features
from emoray.redact import redact
from emoray.ravdess import parse_name
from emoray.shards import ClipFeatures, to_table
from emoray.source import fetch

REPORT_KEY = b"emoray.shard_report"
MAX_CLIP_S = 60.0  # a longer source is an error: a trial is a short clip (RAVDESS: 3-5 s)
SILENCE_DBFS = -60.0  # audio peaking below this is an error: silence teaches no emotion


@dataclass(frozen=True)
class ShardSpec:
    """One shard to write: its trials (as plain dicts, so specs travel through Ray Data)."""

    name: str  # e.g. shard-00003-1a2b3c4d5e; unique for (trials, sources, feature config)
    trials: list[dict]  # {"stem", "audio_uri", "video_uri", "audio_size", "video_size"}

    @property
    def path(self) -> str:
        return f"shards/{self.name}.parquet"


@dataclass
class ShardReport:
    """What writing a shard produced; stored in the shard's footer so a skipped shard still
    reports its errors and hashes."""

    path: str
    rows: int = 0
    no_face: int = 0
    errors: list[dict] = field(default_factory=list)  # rows of shards.ERRORS_SCHEMA
    hashes: dict[str, str] = field(default_factory=dict)  # uri -> sha256, files that were read
    seconds: float = 0.0
    skipped: bool = False


def plan_shards(trials: list[Trial], cfg: FeatureConfig, shard_size: int,
                sizes: dict[str, int]) -> list[ShardSpec]:
    """Split the (sorted) trials into shards with deterministic names.

    A name hashes the feature config and each trial's sources and their sizes, so a re-run
    over the same input finds the same names, and a changed input or config gets new ones.
    """
    specs = []
    for i in range(0, len(trials), shard_size):
        chunk = [{"stem": t.name.stem(), "audio_uri": t.audio_uri, "video_uri": t.video_uri,
                  "audio_size": sizes.get(t.audio_uri), "video_size": sizes.get(t.video_uri)}
                 for t in trials[i:i + shard_size]]
        h = hashlib.sha256(cfg.fingerprint().encode())
        for t in chunk:
            for uri in (t["audio_uri"], t["video_uri"]):
                h.update(f"{uri}:{sizes.get(uri)};".encode())
        specs.append(ShardSpec(f"shard-{i // shard_size:05d}-{h.hexdigest()[:10]}", chunk))
    return specs


def featurize_trial(trial: dict, cfg: FeatureConfig, report: ShardReport) -> ClipFeatures | None:
    """Read, hash, decode and featurize one trial's sources. A failed source becomes an
    error row; the trial survives with the other modality, or returns None if none is left.
    An object store that does not answer raises: the task fails and nothing is written."""
    name = parse_name(trial["stem"])
    row = ClipFeatures(trial_id=name.trial_id, label=name.label, emotion=name.emotion_name,
                       intensity=name.intensity, statement=name.statement,
                       repetition=name.repetition, actor=name.actor, gender=name.gender)
    for modality in ("audio", "video"):
        uri = trial[f"{modality}_uri"]
        if uri is None:
            continue
        try:
            source = fetch(uri, trial[f"{modality}_size"])
            report.hashes[uri] = source.sha256
            if modality == "audio":
                row.audio, row.audio_duration_s = _audio(source.open(), cfg)
                row.audio_uri, row.audio_sha256 = uri, source.sha256
            else:
                row.video, row.face_detected = video_features(source.open(), cfg.video,
                                                              MAX_CLIP_S, MIN_CLIP_S)
                row.video_uri, row.video_sha256 = uri, source.sha256
                report.no_face += not row.face_detected
        except MediaError as e:
            report.errors.append({"uri": uri, "stage": e.stage, "reason": redact(e.reason)})
        except Exception as e:  # noqa: BLE001 - one odd file must never kill the job
            if storage.is_transient(e):
                raise
            report.errors.append({"uri": uri, "stage": modality,
                                  "reason": redact(f"unexpected {type(e).__name__}: {e}")})
    return row if row.audio is not None or row.video is not None else None


def _audio(src, cfg: FeatureConfig):
    """The training audio path (``decode_audio`` + ``audio_features``, as labeling runs it) for a
    clip of ``MIN_CLIP_S`` to ``MAX_CLIP_S`` that is not silent: (features, duration in seconds)."""
    wave = decode_audio(src, cfg.audio.sample_rate, MAX_CLIP_S)
    if len(wave) < MIN_CLIP_S * cfg.audio.sample_rate:
        raise too_short("audio", len(wave) / cfg.audio.sample_rate)
    peak = peak_dbfs(wave)
    if peak < SILENCE_DBFS:
        raise MediaError("audio", f"silent: peak {peak:.0f} dBFS is below {SILENCE_DBFS:.0f} dBFS")
    return audio_features(wave, cfg.audio), len(wave) / cfg.audio.sample_rate


def write_shard(spec: ShardSpec, cfg: FeatureConfig, output: str) -> ShardReport:
    """Featurize a shard's trials and write it atomically; skip it if it is already complete."""
    uri = storage.join(output, spec.path)
    if storage.exists(uri):
        return read_report(uri)
    start = time.perf_counter()
    report = ShardReport(path=spec.path)
    rows = [r for r in (featurize_trial(t, cfg, report) for t in spec.trials) if r is not None]
    report.rows = len(rows)
    report.seconds = time.perf_counter() - start
    table = to_table(rows, cfg)
    meta = dict(table.schema.metadata)
    meta[REPORT_KEY] = json.dumps(asdict(report)).encode()
    storage.write_parquet(uri, table.replace_schema_metadata(meta))
    return report


def read_report(uri: str) -> ShardReport:
    """The report stored in a complete shard's footer."""
    fs, path = storage.filesystem(uri)
    with fs.open_input_file(path) as f:
        meta = pq.read_schema(f).metadata
    report = ShardReport(**json.loads(meta[REPORT_KEY]))
    report.skipped = True
    return report
