import pytest

from emoray.ravdess import EMOTIONS, RavdessNameError, parse_name


def test_parses_all_seven_fields():
    n = parse_name("/data/Actor_12/01-01-06-02-01-02-12.mp4")
    assert (n.modality, n.vocal_channel, n.emotion, n.intensity, n.statement, n.repetition,
            n.actor) == (1, 1, 6, 2, 1, 2, 12)
    assert n.emotion_name == "fearful" and n.label == 5 and EMOTIONS[n.label] == "fearful"
    assert n.gender == "female" and parse_name("03-01-01-01-01-01-07.wav").gender == "male"
    assert n.trial_id == "01-06-02-01-02-12" and n.stem() == "01-01-06-02-01-02-12"


@pytest.mark.parametrize("name, message", [
    ("hello.wav", "seven two-digit fields"),
    ("03-01-01-01-01-01.wav", "seven two-digit fields"),
    ("03-01-1-01-01-01-01.wav", "seven two-digit fields"),
    ("04-01-01-01-01-01-01.wav", "modality 04"),
    ("03-03-01-01-01-01-01.wav", "vocal channel 03"),
    ("03-01-09-01-01-01-01.wav", "emotion 09"),
    ("03-01-00-01-01-01-01.wav", "emotion 00"),
    ("03-01-02-03-01-01-01.wav", "intensity 03"),
    ("03-01-02-01-03-01-01.wav", "statement 03"),
    ("03-01-02-01-01-03-01.wav", "repetition 03"),
    ("03-01-02-01-01-01-25.wav", "actor 25"),
    ("03-01-01-02-01-01-01.wav", "neutral (emotion 01) has no strong"),
])
def test_malformed_names_say_which_field(name, message):
    with pytest.raises(RavdessNameError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_name(name)
