import pytest
import torch

from emoray.config import ConfigError
from emoray.features.config import preset
from emoray.models import FusionHead, FusionNet, build_branch, model_config
from emoray.models.augment import spec_augment

PAPER = preset("paper")  # MFCC 180 x 20, video 30 x 80 x 70
DEFAULT = preset("default")  # log-mel 300 x 64


def batch(features, n=2):
    torch.manual_seed(0)
    return (torch.randn(n, *features.audio.shape),
            torch.randint(0, 256, (n, *features.video.shape), dtype=torch.uint8))


@pytest.mark.parametrize("features", [PAPER, DEFAULT], ids=["paper-features", "default-features"])
@pytest.mark.parametrize("preset_name", ["paper", "default"])
def test_models_take_shard_tensors_and_give_logits_and_embeddings(features, preset_name):
    audio_x, video_x = batch(features)
    audio = build_branch("audio", model_config("audio", preset_name), features).eval()
    video = build_branch("video", model_config("video", preset_name), features).eval()
    assert audio(audio_x).shape == video(video_x).shape == (2, 8)
    assert audio.embed(audio_x).shape == (2, audio.embed_dim)
    assert video.embed(video_x).shape == (2, video.embed_dim)
    head = FusionHead(model_config("fusion", preset_name), audio.embed_dim, video.embed_dim)
    fusion = FusionNet(audio, video, head).eval()
    assert fusion(audio_x, video_x).shape == (2, 8)
    assert fusion.inputs == ("audio", "video")


def test_paper_architecture():
    audio = build_branch("audio", model_config("audio", "paper"), PAPER)
    video = build_branch("video", model_config("video", "paper"), PAPER)
    assert [m.out_features for m in audio.hidden if isinstance(m, torch.nn.Linear)] == [256, 64]
    assert audio.conv[0].in_channels == 20  # MFCC coefficients are the channels
    convs = [m for m in video.conv if isinstance(m, torch.nn.Conv3d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32]
    assert all(c.kernel_size == (3, 3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.MaxPool3d) for m in video.conv) == 2
    assert [m.out_features for m in video.hidden if isinstance(m, torch.nn.Linear)] == [64]
    assert audio.embed_dim == video.embed_dim == 64
    head = FusionHead(model_config("fusion", "paper"), 64, 64)
    assert [m.out_features for m in head.hidden if isinstance(m, torch.nn.Linear)] == [128]
    assert head.out.in_features == 128 and head.out.out_features == 8


def test_fusion_branches_are_frozen_and_stay_in_eval_mode():
    audio_x, video_x = batch(PAPER)
    audio = build_branch("audio", model_config("audio", "default"), PAPER)
    video = build_branch("video", model_config("video", "default"), PAPER)
    fusion = FusionNet(audio, video, FusionHead(model_config("fusion", "paper"), 64, 64)).train()
    assert not audio.training and not video.training and fusion.head.training
    fusion(audio_x, video_x).sum().backward()
    assert all(p.grad is None for p in audio.parameters())
    assert all(p.grad is not None for p in fusion.head.parameters())


def test_augmentation_only_in_training():
    features = DEFAULT
    audio_x, video_x = batch(features)
    audio = build_branch("audio", model_config("audio", "default"), features).eval()
    assert torch.equal(audio(audio_x), audio(audio_x))
    masked = spec_augment(torch.ones(4, 300, 64), 2, 0.1, 2, 0.15)
    assert 0 < (masked == 0).float().mean() < 0.5


def test_model_config_overrides_are_validated():
    assert model_config("audio", "paper", {"channels": [8, 8]}).channels == (8, 8)
    with pytest.raises(ConfigError, match="audio.model.*chanels"):
        model_config("audio", "paper", {"chanels": [8]})
    with pytest.raises(ConfigError, match="video.model.padding"):
        model_config("video", "paper", {"padding": "full"})


def test_too_small_inputs_fail_clearly():
    tiny = preset("paper")
    with pytest.raises(ValueError, match="too short"):
        build_branch("audio", model_config("audio", "paper", {"channels": [8] * 9}), tiny)
    with pytest.raises(ValueError, match="too small"):
        build_branch("video", model_config("video", "paper", {"channels": [4] * 8}), tiny)


def test_padding_is_left_out_of_utterance_statistics():
    """A clip padded with silence gives the same normalised content and the same
    functionals as the clip alone: the padded tail is masked out."""
    from emoray.models.audio import content_mask, normalise, utterance_functionals

    torch.manual_seed(0)
    speech = torch.randn(1, 200, 64)
    padded = torch.cat([speech, torch.full((1, 100, 64), -80.0)], 1)
    mask = content_mask(padded)
    assert mask.sum() == 200 and content_mask(speech).all()
    assert torch.allclose(normalise(padded, mask)[:, :200],
                          normalise(speech, content_mask(speech)), atol=1e-5)
    assert (normalise(padded, mask)[:, 200:] == 0).all()
    assert torch.allclose(utterance_functionals(padded, mask),
                          utterance_functionals(speech, content_mask(speech)), atol=1e-5)


def test_functionals_join_the_cnn_and_mixup_mixes_inputs_and_labels():
    from emoray.train.loop import mix

    cfg = model_config("audio", "default", {"functionals": [32], "skip_padding": True,
                                            "readout": "meanstd"})
    net = build_branch("audio", cfg, DEFAULT).eval()
    x = batch(DEFAULT, n=3)[0]
    assert net(x).shape == (3, 8) and net.embed(x).shape == (3, net.embed_dim)
    y = torch.tensor([0, 1, 2])
    (mixed,), lam, y2 = mix([x], y, alpha=0.4)
    assert 0 <= lam <= 1 and sorted(y2.tolist()) == [0, 1, 2]
    partner = [y.tolist().index(v) for v in y2.tolist()]
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[partner])


def test_a_motion_video_net_sees_how_a_face_moves_not_what_it_looks_like():
    """With ``motion`` two faces that do not move give the same output, however they look,
    and a face that moves differently gives another."""
    torch.manual_seed(0)
    net = build_branch("video", model_config("video", "default", {"motion": True}), DEFAULT).eval()
    frames, h, w = DEFAULT.video.shape
    faces = torch.randint(0, 256, (2, 1, h, w), dtype=torch.uint8)
    still = faces.expand(2, frames, h, w)  # two different faces, each frozen
    moving = still.clone()
    moving[1, frames // 2:] = torch.roll(faces[1], 3, dims=1)  # the second one moves
    with torch.no_grad():
        assert torch.equal(net(still)[0], net(still)[1])
        assert not torch.allclose(net(moving)[0], net(moving)[1])
    plain = build_branch("video", model_config("video", "default"), DEFAULT).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(still)[0], plain(still)[1])  # appearance counts
