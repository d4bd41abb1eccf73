import numpy as np

from emoray.features.speakers import (clip_sums, merge, normalise, normalise_clips, speaker_key,
                                      statistics)


def test_speaker_key_is_the_ravdess_actor_else_the_folder():
    assert speaker_key("s3://b/x/Actor_07/03-01-05-02-01-01-07.wav") == "actor 07"
    assert speaker_key("/data/Actor_07/03-01-05-02-01-01-07.flac") == "actor 07"
    assert speaker_key("s3://b/calls/alice/memo 1.wav") == "s3://b/calls/alice"
    assert speaker_key("/calls/bob/03-01-09-01-01-01-01.wav") == "/calls/bob"  # emotion 09


def test_statistics_pool_every_frame_of_a_speaker_and_merge_in_any_order():
    rng = np.random.default_rng(0)
    clips = [rng.normal(i, 1 + i, (50, 4)).astype(np.float32) for i in range(6)]
    keys = ["a", "b", "a", "a", "b", "b"]
    whole = statistics(clip_sums(keys, clips))
    parts = statistics(merge(clip_sums(keys[4:], clips[4:]), clip_sums(keys[:4], clips[:4])))
    for key in "ab":
        frames = np.concatenate([c for c, k in zip(clips, keys) if k == key])
        np.testing.assert_allclose(whole[key][0], frames.mean(0), rtol=1e-6)
        np.testing.assert_allclose(whole[key][1], frames.std(0), rtol=1e-6)
        np.testing.assert_allclose(parts[key], whole[key], rtol=1e-9)
        z = np.concatenate(normalise_clips([key] * 3, [c for c, k in zip(clips, keys)
                                                       if k == key], whole))
        np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(z.std(0), 1, atol=1e-3)
    assert normalise_clips(["a", "b"], [None, clips[1]], whole)[0] is None


def test_speaker_normalisation_keeps_what_sets_an_utterance_apart():
    """A clip 10 dB louder than its speaker's other clip stays louder after speaker
    normalisation (per-utterance normalisation would make the two equal)."""
    rng = np.random.default_rng(1)
    calm = rng.normal(-40, 3, (100, 8)).astype(np.float32)
    loud = calm + 10
    (mean, std), = statistics(clip_sums(["s", "s"], [calm, loud])).values()
    assert (normalise(loud, mean, std).mean() - normalise(calm, mean, std).mean()) > 1.5
