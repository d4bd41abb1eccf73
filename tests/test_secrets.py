"""Credentials never leak: a preprocessing and a labeling run on S3 with a known secret leave it
in no output object, error row, driver output or Ray log; URIs that carry credentials are
refused without being echoed; error text loses URI credentials and signed-URL parameters."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray

from badmedia import write_subtitles_only
from emoray.artifact import save_model
from emoray.features.config import preset
from emoray.label import cli as label_cli
from emoray.redact import redact
from emoray.preprocess import cli as preprocess_cli
from emoray.train import cli as train_cli
from test_label_stage import tiny_fusion

LEAKY = "s3://AKIAEXAMPLEKEY:wJalr/XUtnFEMI+bPxRfiCY@bucket/in"


def test_redact_uri_credentials_and_signed_urls():
    text = redact(f"cannot read {LEAKY}/a.wav via https://u:pw@host/x?AWSAccessKeyId=AKIA2&"
                  "Expires=1&Signature=c2lnbmF0dXJl and https://h/k?X-Amz-Credential=AKIA3%2F"
                  "20260101&X-Amz-Security-Token=tok3n&X-Amz-Signature=feedbeef")
    for secret in ("AKIAEXAMPLEKEY", "wJalr", "pw@", "AKIA2", "c2lnbmF0dXJl", "AKIA3", "tok3n",
                   "feedbeef"):
        assert secret not in text
    assert "s3://***@bucket/in/a.wav" in text and "Expires=1" in text


@pytest.mark.parametrize("main, argv", [
    (preprocess_cli.main, ["--input", LEAKY, "--output", "out"]),
    (label_cli.main, ["--model", f"{LEAKY}/m.pt", "--input", "in", "--output", "out"]),
    (train_cli.main, ["--config", str(Path(__file__).parents[1] / "jobs" / "configs" /
                                      "train_audio.yaml"), f"data={LEAKY}"]),
])
def test_a_uri_carrying_credentials_is_refused_unechoed(main, argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "credentials do not belong in a URI" in err and "s3://***@bucket/in" in err
    assert "AKIAEXAMPLEKEY" not in err and "wJalr" not in err


def _texts(s3, prefix: str, tmp: Path) -> dict[str, bytes]:
    """Every object under ``prefix``: its bytes, and for Parquet also its decoded rows and
    metadata (compression would hide a secret from a byte search)."""
    client = s3.client()
    out = {}
    for o in client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)["Contents"]:
        data = client.get_object(Bucket=s3.bucket, Key=o["Key"])["Body"].read()
        out[o["Key"]] = data
        if o["Key"].endswith(".parquet"):
            (tmp / "part.parquet").write_bytes(data)
            t = pq.read_table(tmp / "part.parquet")
            decoded = json.dumps(t.drop_columns([c for c in ("audio", "video")
                                                 if c in t.column_names]).to_pylist(),
                                 default=str) + str(t.schema.metadata)
            out[o["Key"] + " (decoded)"] = decoded.encode()
    return out


def test_no_credentials_in_any_output_or_log(ray_local, s3, synth_corpus, tmp_path, capfd):
    corpus = tmp_path / "corpus"
    shutil.copytree(synth_corpus / "Actor_02", corpus / "Actor_02")
    (corpus / "Actor_02" / "03-01-02-01-01-01-02.wav").write_bytes(b"")  # error rows too
    write_subtitles_only(corpus / "Actor_02" / "02-01-03-01-01-01-02.mp4")
    src = s3.upload_dir(corpus, "secrets/in")
    model = f"s3://{s3.bucket}/secrets/fusion.pt"
    save_model(model, tiny_fusion(), preset("default"))
    shards, labels = f"s3://{s3.bucket}/secrets/shards", f"s3://{s3.bucket}/secrets/labels"
    assert preprocess_cli.main(["--input", src, "--output", shards]) == 0
    assert label_cli.main(["--model", model, "--input", src, "--output", labels]) == 0
    captured = capfd.readouterr()
    texts = {**_texts(s3, "secrets/shards/", tmp_path), **_texts(s3, "secrets/labels/", tmp_path),
             "stdout": captured.out.encode(), "stderr": captured.err.encode()}
    assert b"file is empty" in texts["secrets/shards/errors.parquet (decoded)"]
    assert any(b"no audio or video stream" in v for k, v in texts.items() if "errors/" in k)
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    log_files = {str(p): p.read_bytes() for p in logs.rglob("*") if p.is_file()}
    assert any("worker" in name for name in log_files)  # the Ray workers' own logs
    texts.update(log_files)
    for secret in (s3.secret_key, s3.access_key):
        leaks = [name for name, text in texts.items() if secret.encode() in text]
        assert not leaks, f"{secret} found in {leaks}"
