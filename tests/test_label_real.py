"""Labeling the real RAVDESS videos of ../shared/data (``conftest.real_data``): full-AV files go
to the fusion model, video-only files (a silent AAC track) to the video branch."""

import torch

from emoray.artifact import save_model
from emoray.features.config import preset
from emoray.label.config import LabelConfig
from emoray.label.job import run_label
from emoray.label.parts import read_output
from emoray.models import FusionHead, FusionNet, build_branch, model_config
from conftest import real_data


def test_real_videos_route_by_their_media(ray_local, tmp_path):
    videos = real_data("ravdess-video-actor05")
    torch.manual_seed(0)
    features = preset("default")
    audio = build_branch("audio", model_config("audio", "paper"), features)
    video = build_branch("video", model_config("video", "paper"), features)
    head = FusionHead(model_config("fusion", "paper"), audio.embed_dim, video.embed_dim)
    save_model(str(tmp_path / "fusion.pt"), FusionNet(audio, video, head), features)
    summary = run_label(LabelConfig(model=str(tmp_path / "fusion.pt"),
                                    input=str(videos),
                                    output=str(tmp_path / "labels")))
    assert (summary["labelled"], summary["errors"], summary["windows"]) == (6, 0, 0)
    rows = read_output(str(tmp_path / "labels"))[0].to_pylist()
    routed = {r["uri"].rsplit("/", 1)[-1][:2]: set() for r in rows}
    for r in rows:
        routed[r["uri"].rsplit("/", 1)[-1][:2]].add(
            (r["modality"], r["has_audio"], r["has_video"], r["face_detected"]))
    assert routed == {"01": {("fusion", True, True, True)}, "02": {("video", False, True, True)}}
    assert all(2.5 < r["duration_s"] < 6 for r in rows)
