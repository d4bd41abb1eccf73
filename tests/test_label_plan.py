"""Planning in waves (emoray.label.plan) and the streamed listing it reads
(storage.iter_files), on a local folder and on a real S3 server."""

import posixpath

from emoray import storage
from emoray.label.parts import plan_parts
from emoray.label.plan import Plan


def _archive(speakers: int, files: int) -> list[storage.FileEntry]:
    return [storage.FileEntry(f"s3://b/calls/spk{s:03d}/rec{i:04d}.wav", 1000 + i)
            for s in range(speakers) for i in range(files)]


def _folder(uri: str) -> str:
    return posixpath.dirname(uri)


def test_waves_hold_every_pending_file_once_with_whole_speakers():
    entries = _archive(60, 30)  # 1800 files
    done = {e.uri for e in entries[::3]}
    plan = Plan(iter(entries), iter(done), 64, {"m": 1}, _folder, wave_files=200)
    assert (plan.listed, plan.done) == (1800, 600)
    waves = list(plan.waves())
    assert len(waves) > 3  # the archive was read back a wave at a time
    assert max(w.pending for w in waves) < 200 + 2 * 30 * 64 // 60  # a wave, not the archive
    planned = [u for w in waves for p in w.parts for u in p.uris]
    assert sorted(planned) == sorted(e.uri for e in entries if e.uri not in done)
    assert sum(w.listed for w in waves) == 1800
    where = {}
    for w in waves:
        for p in w.parts:
            for u in p.uris:
                where.setdefault(_folder(u), set()).add(p.name)
    assert all(len(names) == 1 for names in where.values())  # a speaker in one part


def test_an_archive_of_one_wave_is_planned_as_if_held_whole():
    entries = _archive(7, 40)
    for key in (None, _folder):
        waves = list(Plan(reversed(entries), iter(()), 64, {"m": 1}, key, 256).waves())
        assert len(waves) == 1
        assert waves[0].parts == plan_parts(entries, 64, {"m": 1}, key, 256)


def test_a_local_listing_streams_and_sorts_as_list_files(tmp_path):
    for d in ("a", "a/b", "c"):
        (tmp_path / d).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            (tmp_path / d / f"{i}.wav").write_bytes(b"x" * i)
    stream = storage.iter_files(str(tmp_path))
    assert not isinstance(stream, list)
    assert sorted(stream, key=lambda f: f.uri) == storage.list_files(str(tmp_path))
    assert len(storage.list_files(str(tmp_path))) == 9


def test_an_s3_listing_pages_through_more_than_a_thousand_keys(s3):
    client = s3.client()
    prefix = "plan-listing"
    keys = [f"{prefix}/spk{i % 7}/f{i:05d}.wav" for i in range(1203)]
    for k in keys:
        client.put_object(Bucket=s3.bucket, Key=k, Body=b"abc")
    client.put_object(Bucket=s3.bucket, Key=f"{prefix}-other/x.wav", Body=b"a")  # not under it
    listed = list(storage.iter_files(f"s3://{s3.bucket}/{prefix}"))
    assert sorted(f.uri for f in listed) == sorted(f"s3://{s3.bucket}/{k}" for k in keys)
    assert {f.size for f in listed} == {3}
    one = f"s3://{s3.bucket}/{keys[5]}"
    assert storage.list_files(one) == [storage.FileEntry(one, 3)]
    assert storage.list_files(f"s3://{s3.bucket}/no-such-prefix") == []
