import dataclasses

import pytest
import torch

import emoray
from emoray.artifact import ArtifactError, load_model, save_model
from emoray.features.config import preset
from emoray.models import FusionHead, FusionNet, build_branch, model_config
from emoray.ravdess import EMOTIONS

FEATURES = preset("paper")


def models():
    torch.manual_seed(0)
    audio = build_branch("audio", model_config("audio", "paper", {"channels": [8, 8]}), FEATURES)
    video = build_branch("video", model_config("video", "default", {"channels": [4, 4]}),
                         FEATURES)
    head = FusionHead(model_config("fusion", "default"), audio.embed_dim, video.embed_dim)
    return audio.eval(), video.eval(), FusionNet(audio, video, head).eval()


def inputs(n=3):
    torch.manual_seed(1)
    return (torch.randn(n, *FEATURES.audio.shape),
            torch.randint(0, 256, (n, *FEATURES.video.shape), dtype=torch.uint8))


def test_round_trip_gives_the_same_model_and_metadata(tmp_path):
    audio, video, fusion = models()
    a, v = inputs()
    for model, x in ((audio, (a,)), (video, (v,)), (fusion, (a, v))):
        uri = str(tmp_path / "m.pt")
        save_model(uri, model, FEATURES, training={"split": "random", "test_accuracy": 0.5})
        loaded, info = load_model(uri, expect_features=FEATURES)
        assert not loaded.training
        assert torch.equal(loaded(*x), model(*x))
        assert info.labels == EMOTIONS and info.emoray_version == emoray.__version__
        assert info.features == FEATURES and info.training["split"] == "random"
        assert loaded.inputs == model.inputs


def test_artifact_is_plain_tensors_and_containers(tmp_path):
    _, _, fusion = models()
    save_model(str(tmp_path / "f.pt"), fusion, FEATURES)
    payload = torch.load(tmp_path / "f.pt", weights_only=True)
    assert payload["kind"] == "fusion"
    assert payload["feature_fingerprint"] == FEATURES.fingerprint()
    assert any(k.startswith("audio.") for k in payload["state_dict"])  # branches are inside
    assert set(payload["model_config"]) == {"audio", "video", "fusion"}


def test_feature_mismatch_names_the_fields(tmp_path):
    audio, _, _ = models()
    save_model(str(tmp_path / "a.pt"), audio, FEATURES)
    other = dataclasses.replace(FEATURES, audio=dataclasses.replace(FEATURES.audio, n_mfcc=40))
    with pytest.raises(ArtifactError, match=r"other features.*audio\.n_mfcc: model 20 vs "
                                            r"expected 40"):
        load_model(str(tmp_path / "a.pt"), expect_features=other)


def test_corrupt_and_foreign_files_fail_clearly(tmp_path):
    audio, _, _ = models()
    good = tmp_path / "a.pt"
    save_model(str(good), audio, FEATURES)
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    payload = torch.load(good, weights_only=True)
    payload["state_dict"].popitem()
    torch.save(payload, tmp_path / "missing_weights.pt")
    for name, message in (("truncated.pt", "not a readable emoray model"),
                          ("text.pt", "not a readable emoray model"),
                          ("foreign.pt", "not an emoray model file"),
                          ("missing_weights.pt", "corrupt emoray model file")):
        with pytest.raises(ArtifactError, match=message):
            load_model(str(tmp_path / name))
    with pytest.raises(FileNotFoundError):
        load_model(str(tmp_path / "absent.pt"))


class _Payload:
    """Pickles as a call to ``os.system``: what a malicious model file carries."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_a_model_file_that_runs_code_is_refused_unrun(tmp_path):
    """Artifacts load with ``weights_only=True``: a pickled callable is an error, never a call."""
    marker = tmp_path / "pwned"
    torch.save({"format": "emoray-model", "payload": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ArtifactError, match="not a readable emoray model file"):
        load_model(str(tmp_path / "evil.pt"))
    assert not marker.exists()
