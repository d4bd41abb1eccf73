from emoray.catalog import build_catalog, find_duplicates
from emoray.storage import FileEntry


def files(*uris):
    return [FileEntry(u, 100) for u in uris]


def test_pairs_audio_only_with_video_only_of_the_same_trial():
    cat = build_catalog(files("c/Actor_01/03-01-05-02-01-01-01.wav",
                              "c/Actor_01/02-01-05-02-01-01-01.mp4",
                              "c/Actor_01/03-01-02-01-01-01-01.wav"))
    assert [t.trial_id for t in cat.trials] == ["01-02-01-01-01-01", "01-05-02-01-01-01"]
    calm, angry = cat.trials
    assert calm.audio_uri.endswith("03-01-02-01-01-01-01.wav") and calm.video_uri is None
    assert angry.audio_uri.endswith("03-01-05-02-01-01-01.wav")
    assert angry.video_uri.endswith("02-01-05-02-01-01-01.mp4")
    assert angry.name.emotion_name == "angry" and angry.name.actor == 1
    assert not cat.errors


def test_full_av_file_supplies_both_streams_or_fills_a_gap():
    cat = build_catalog(files("01-01-03-01-01-01-02.mp4",
                              "01-01-04-01-01-01-02.mp4", "03-01-04-01-01-01-02.wav"))
    happy, sad = cat.trials
    assert happy.audio_uri == happy.video_uri == "01-01-03-01-01-01-02.mp4"
    assert sad.audio_uri == "03-01-04-01-01-01-02.wav" and sad.video_uri == "01-01-04-01-01-01-02.mp4"


def test_bad_names_are_errors_and_non_media_is_ignored():
    cat = build_catalog(files("x/03-01-09-01-01-01-01.wav", "x/notes.txt", "x/clip.wav",
                              "x/03-01-02-01-01-01-01.wav", "y/03-01-02-01-01-01-01.wav"))
    assert cat.ignored == ["x/notes.txt"]
    reasons = {e.uri: e.reason for e in cat.errors}
    assert "emotion 09" in reasons["x/03-01-09-01-01-01-01.wav"]
    assert "RAVDESS name" in reasons["x/clip.wav"]
    assert "same trial and modality as x/03-01-02-01-01-01-01.wav" in reasons["y/03-01-02-01-01-01-01.wav"]
    assert len(cat.trials) == 1


def test_find_duplicates_groups_identical_contents():
    dups = find_duplicates({"b": "h1", "a": "h1", "c": "h2", "d": "h3", "e": "h3", "f": "h3"})
    assert dups == [["a", "b"], ["d", "e", "f"]]
