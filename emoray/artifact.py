"""Model artifacts: one self-contained file per trained model.

The file is a ``torch.save`` of plain containers and tensors only, so it loads with
``torch.load(..., weights_only=True)``:

| key                 | value                                                        |
|---------------------|--------------------------------------------------------------|
| format              | ``"emoray-model"``                                           |
| format_version      | 1                                                            |
| kind                | ``audio``, ``video`` or ``fusion``                           |
| model_config        | the model's config dict; fusion: ``{"audio", "video", "fusion"}`` |
| state_dict          | weights (a fusion file holds both branches' weights too)     |
| feature_config      | ``FeatureConfig.to_dict()`` of the shards it was trained on  |
| feature_fingerprint | ``FeatureConfig.fingerprint()``                              |
| labels              | class names, index order (``emoray.ravdess.EMOTIONS``)       |
| emoray_version      | ``emoray.__version__`` that wrote it                         |
| training            | plain-data summary of the training run (name, protocol, metrics) |
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import torch
from torch import nn

import emoray
from emoray import storage
from emoray.features.config import FeatureConfig
from emoray.models import (AudioEnsemble, AudioNet, FusionHead, FusionNet, SummaryNet, VideoNet,
                           build_branch)
from emoray.models.config import from_dict, to_dict
from emoray.ravdess import EMOTIONS

FORMAT = "emoray-model"
FORMAT_VERSION = 1


class ArtifactError(ValueError):
    """A model file is unreadable, not an emoray model, or does not fit the expected features."""


@dataclass(frozen=True)
class ModelInfo:
    kind: str
    features: FeatureConfig
    labels: tuple[str, ...]
    emoray_version: str
    model_config: dict
    training: dict = field(default_factory=dict)


def kind_of(model: nn.Module) -> str:
    for kind, cls in (("audio", (AudioNet, SummaryNet, AudioEnsemble)), ("video", VideoNet),
                      ("fusion", FusionNet)):
        if isinstance(model, cls):
            return kind
    raise TypeError(f"not an emoray model: {type(model).__name__}")


def to_payload(model: nn.Module, features: FeatureConfig, training: dict | None = None) -> dict:
    kind = kind_of(model)
    if kind == "fusion":
        config = {"audio": to_dict(model.audio.cfg), "video": to_dict(model.video.cfg),
                  "fusion": to_dict(model.head.cfg)}
    else:
        config = to_dict(model.cfg)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
        "model_config": config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "feature_config": features.to_dict(), "feature_fingerprint": features.fingerprint(),
        "labels": list(EMOTIONS), "emoray_version": emoray.__version__,
        "training": training or {},
    }


def save_model(uri: str, model: nn.Module, features: FeatureConfig,
               training: dict | None = None) -> None:
    """Write ``model`` (an audio, video or fusion network) as an artifact at
    ``uri``."""
    buf = io.BytesIO()
    torch.save(to_payload(model, features, training), buf)
    storage.write_bytes(uri, buf.getvalue())


def load_model(uri: str, expect_features: FeatureConfig | None = None,
               device: str | torch.device = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Load an artifact as an eval-mode model on ``device`` plus its metadata.

    With ``expect_features``, the artifact must have been trained on exactly those features.
    Raises ``ArtifactError`` with the reason otherwise, or when the file is not a readable
    emoray model.
    """
    try:
        payload = torch.load(io.BytesIO(storage.read_bytes(uri)), map_location="cpu",
                             weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ArtifactError(f"{uri}: not a readable emoray model file "
                            f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ArtifactError(f"{uri}: not an emoray model file (no format={FORMAT!r} marker)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{uri}: model file format version {payload.get('format_version')!r}"
                            f" is not supported (this emoray reads {FORMAT_VERSION})")
    try:
        features = FeatureConfig.from_dict(payload["feature_config"])
        model = _build(payload["kind"], payload["model_config"], features)
        model.load_state_dict(payload["state_dict"])
    except Exception as e:
        raise ArtifactError(f"{uri}: corrupt emoray model file ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200]})") from None
    if features.fingerprint() != payload["feature_fingerprint"]:
        raise ArtifactError(f"{uri}: corrupt emoray model file (feature fingerprint "
                            f"{payload['feature_fingerprint']} does not match its feature config)")
    if expect_features is not None and expect_features.fingerprint() != features.fingerprint():
        diffs = ", ".join(f"{k}: model {a!r} vs expected {b!r}" for k, a, b in
                          _differences(features.to_dict(), expect_features.to_dict()))
        raise ArtifactError(f"{uri}: the model was trained on other features (fingerprint "
                            f"{features.fingerprint()}, expected {expect_features.fingerprint()}):"
                            f" {diffs}")
    info = ModelInfo(kind=payload["kind"], features=features, labels=tuple(payload["labels"]),
                     emoray_version=payload["emoray_version"],
                     model_config=payload["model_config"], training=payload["training"])
    return model.to(device).eval(), info


def _build(kind: str, config: dict, features: FeatureConfig) -> nn.Module:
    if kind in ("audio", "video"):
        return build_branch(kind, from_dict(kind, config), features)
    if kind == "fusion":
        audio = build_branch("audio", from_dict("audio", config["audio"]), features)
        video = build_branch("video", from_dict("video", config["video"]), features)
        head = FusionHead(from_dict("fusion", config["fusion"]), audio.embed_dim, video.embed_dim)
        return FusionNet(audio, video, head)
    raise ValueError(f"unknown model kind {kind!r}")


def _differences(a: dict, b: dict, prefix: str = ""):
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            yield from _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            yield f"{prefix}{k}", va, vb
