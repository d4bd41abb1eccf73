"""The labeling job's defaults, on the session's local Ray: the default ``exclude`` globs, files
inside the output skipped when the output lies inside the input, and the default model of the
working directory when none is named (and what to do when it is missing)."""

import hashlib
import shutil

import pyarrow.dataset as pads
import pytest

from emoray.artifact import save_model
from emoray.features.config import preset
from emoray.label import cli as label_cli
from emoray.label.config import EXCLUDE, LabelConfig
from emoray.label.job import run_label
from test_label_stage import tiny_fusion

SIDECARS = ("notes.txt", "README.md", "meta.json", "index.csv", "old.parquet")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "fusion.pt"
    save_model(str(path), tiny_fusion(), preset("default"))
    return str(path)


@pytest.fixture
def folder(synth_corpus, tmp_path):
    """Two WAVs, and a file named as each default-excluded kind holding a WAV's bytes (so that
    only its name keeps it out)."""
    d = tmp_path / "in"
    d.mkdir()
    wavs = sorted(synth_corpus.rglob("03-*.wav"))[:2]
    for w in wavs:
        shutil.copy(w, d)
    for name in SIDECARS:
        shutil.copy(wavs[0], d / name)
    return d


def labelled(out) -> list[str]:
    rows = pads.dataset(f"{out}/labels", format="parquet").to_table().to_pylist()
    return sorted(r["uri"].rsplit("/", 1)[-1] for r in rows)


def test_default_exclude_skips_sidecar_files(ray_local, model, folder, tmp_path):
    assert all(any(name.endswith(glob[1:]) for name in SIDECARS) for glob in EXCLUDE)
    summary = run_label(LabelConfig(model=model, input=str(folder), output=str(tmp_path / "out")))
    assert labelled(tmp_path / "out") == sorted(p.name for p in folder.glob("03-*.wav"))
    assert (summary["files"], summary["errors"]) == (2, 0)


def test_files_inside_the_output_are_skipped(ray_local, model, folder):
    """The output inside the input, no name excluded: a WAV already in the output, and the
    parts the first run writes there, are never labelled."""
    out = folder / "labels-out"
    out.mkdir()
    shutil.copy(next(folder.glob("03-*.wav")), out / "stray.wav")
    cfg = LabelConfig(model=model, input=str(folder), output=str(out), exclude=[])
    expected = sorted(p.name for p in folder.iterdir() if p.is_file())
    first = run_label(cfg)
    again = run_label(cfg)
    assert labelled(out) == expected and len(expected) == 2 + len(SIDECARS)
    assert (first["files"], again["files"], again["labelled"]) == (len(expected),) * 2 + (0,)


def test_label_without_a_model_uses_the_default_model(ray_local, model, folder, tmp_path,
                                                      monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert label_cli.main(["--input", str(folder), "--output", "out"]) != 0
    err = capsys.readouterr().err
    assert "models/audio-speech18.pt" in err and "make speech-model" in err
    (tmp_path / "models").mkdir()
    shutil.copy(model, tmp_path / "models" / "audio-speech18.pt")
    assert label_cli.main(["--input", str(folder), "--output", "out"]) == 0
    rows = pads.dataset("out/labels", format="parquet").to_table()
    digest = hashlib.sha256((tmp_path / "models" / "audio-speech18.pt").read_bytes()).hexdigest()
    assert set(rows.column("model_id").to_pylist()) == {digest[:16]} and rows.num_rows == 2
