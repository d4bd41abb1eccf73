"""The preprocessing job: the Ray Data layer over ``stage``.

The driver lists and catalogs the input (names only), plans shards, and runs one Ray Data task
per shard; each task reads, decodes and featurizes its trials and writes its shard itself, so
decoded frames never travel through the object store. Finally the driver writes the errors
table and the manifest.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import ray

import emoray
from emoray import console, storage
from emoray.catalog import build_catalog, find_duplicates
from emoray.config import ConfigError, check_uri
from emoray.features.config import FeatureConfig, preset
from emoray.manifest import write_manifest
from emoray.preprocess.stage import ShardReport, ShardSpec, plan_shards, write_shard
from emoray.raycluster import check_resource, pinned
from emoray.shards import ERRORS_SCHEMA

ERRORS_PATH = "errors.parquet"


@dataclass
class PreprocessConfig:
    input: str  # local folder or s3:// prefix of RAVDESS-named media
    output: str  # local folder or s3:// prefix for shards, errors table and manifest
    features: str = "default"  # feature preset: "default" or "paper"
    audio: dict = field(default_factory=dict)  # overrides of the preset's audio fields
    video: dict = field(default_factory=dict)  # overrides of the preset's video fields
    shard_size: int = 64  # trials per shard
    num_cpus: float = 1.0  # CPUs each shard task asks for
    node_resource: str | None = None  # custom resource that marks CPU nodes (cluster.yaml: emoray_cpu)

    def validate(self) -> None:
        if self.shard_size < 1:
            raise ConfigError(f"shard_size: must be >= 1, got {self.shard_size}")
        if self.num_cpus <= 0:
            raise ConfigError(f"num_cpus: must be > 0, got {self.num_cpus}")
        for name in ("input", "output"):
            check_uri(name, getattr(self, name))
        check_resource("node_resource", self.node_resource)
        try:
            self.feature_config()
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def feature_config(self) -> FeatureConfig:
        base = preset(self.features).to_dict()
        base["audio"].update(self.audio)
        base["video"].update(self.video)
        return FeatureConfig.from_dict(base)


def _shard_task(row: dict, cfg: dict, output: str) -> dict:
    import cv2
    import torch

    torch.set_num_threads(1)  # one CPU per task: no intra-op threads for torch or OpenCV
    cv2.setNumThreads(1)
    spec = ShardSpec(row["name"], row["trials"])
    return asdict(write_shard(spec, FeatureConfig.from_dict(cfg), output))


def run_preprocess(cfg: PreprocessConfig) -> dict:
    """Preprocess ``cfg.input`` into shards under ``cfg.output``; returns the manifest."""
    start = time.perf_counter()
    features = cfg.feature_config()
    files = storage.list_files(cfg.input)
    catalog = build_catalog(files)
    sizes = {f.uri: f.size for f in files}
    specs = plan_shards(catalog.trials, features, cfg.shard_size, sizes)
    print(f"emoray preprocess: {len(files)} files, {len(catalog.trials)} trials, "
          f"{len(catalog.errors)} unusable names, {len(specs)} shards -> {cfg.output}", flush=True)
    storage.remove_temp_files(cfg.output)  # left by a killed run's writes
    reports = _run_shards(specs, features, cfg) if specs else []

    errors = [{"uri": e.uri, "stage": "catalog", "reason": e.reason} for e in catalog.errors]
    errors += [e for r in reports for e in r.errors]
    hashes = {u: h for r in reports for u, h in r.hashes.items()}
    _write_errors(cfg.output, errors)
    elapsed = time.perf_counter() - start
    manifest = {
        "emoray_version": emoray.__version__,
        "input": cfg.input,
        "feature_config": features.to_dict(),
        "feature_fingerprint": features.fingerprint(),
        "shards": [{"path": r.path, "rows": r.rows} for r in reports],
        "errors": ERRORS_PATH,
        "n_trials": len(catalog.trials),
        "n_clips": sum(r.rows for r in reports),
        "n_errors": len(errors),
        "n_no_face": sum(r.no_face for r in reports),
        "n_ignored": len(catalog.ignored),
        "duplicates": find_duplicates(hashes),
    }
    write_manifest(cfg.output, manifest)
    _print_summary(manifest, reports, elapsed)
    return manifest


def _run_shards(specs: list[ShardSpec], features: FeatureConfig,
                cfg: PreprocessConfig) -> list[ShardReport]:
    ds = ray.data.from_items([{"name": s.name, "trials": s.trials} for s in specs],
                             override_num_blocks=len(specs))
    ds = ds.map(_shard_task, fn_kwargs={"cfg": features.to_dict(), "output": cfg.output},
                num_cpus=cfg.num_cpus, **pinned(cfg.node_resource))
    rows = []
    with console.bar("preprocess", len(specs), "shard") as bar:
        for row in ds.iter_rows():
            rows.append(row)
            bar.update()
    return [ShardReport(**r) for r in sorted(rows, key=lambda r: r["path"])]


def _write_errors(output: str, errors: list[dict]) -> None:
    table = pa.Table.from_pylist(sorted(errors, key=lambda e: (e["uri"], e["stage"])),
                                 schema=ERRORS_SCHEMA)
    storage.write_parquet(storage.join(output, ERRORS_PATH), table)


def _print_summary(manifest: dict, reports: list[ShardReport], elapsed: float) -> None:
    done = [r for r in reports if not r.skipped]
    work = sum(r.seconds for r in done)
    clips = sum(r.rows for r in done)
    print(f"emoray preprocess: {manifest['n_clips']} clips in {len(reports)} shards "
          f"({len(reports) - len(done)} already complete), {manifest['n_errors']} errors, "
          f"{manifest['n_no_face']} without a detected face, "
          f"{len(manifest['duplicates'])} groups of identical files", flush=True)
    if done:
        print(f"emoray preprocess: {clips / elapsed:.1f} clips/s wall, "
              f"{clips / max(work, 1e-9):.1f} clips/s per task CPU, {elapsed:.1f} s", flush=True)
