"""The preprocessing manifest, ``<output>/manifest.json``: what a finished run wrote.

Fields: ``emoray_version``, ``input``, ``feature_config``, ``feature_fingerprint``, ``shards``
(list of ``{"path": relative path, "rows": n}``), ``errors`` (relative path of the errors
table), ``n_clips``, ``n_errors``, ``n_no_face``, ``duplicates`` (groups of byte-identical
files). Readers use the manifest, never a folder listing, so stale or partial files left by
other runs are never read.
"""

from __future__ import annotations

import json

from emoray import storage
from emoray.features.config import FeatureConfig

MANIFEST = "manifest.json"


def write_manifest(output: str, manifest: dict) -> None:
    storage.write_bytes(storage.join(output, MANIFEST),
                        json.dumps(manifest, indent=2, sort_keys=True).encode())


def read_manifest(output: str) -> dict:
    uri = storage.join(output, MANIFEST)
    if not storage.exists(uri):
        raise FileNotFoundError(f"{uri} not found: is {output!r} the output of `emoray preprocess`?")
    return json.loads(storage.read_bytes(uri))


def shard_uris(output: str) -> list[str]:
    """Full URIs of a finished run's shards."""
    return [storage.join(output, s["path"]) for s in read_manifest(output)["shards"]]


def feature_config(output: str) -> FeatureConfig:
    return FeatureConfig.from_dict(read_manifest(output)["feature_config"])
