"""Local listing and reading: names that are not UTF-8 are listed as URIs Arrow can store and
reopened from them; symlinks are followed, a folder loop is not, and a link that leads nowhere
is listed and says so when read."""

import errno
import os

import pyarrow as pa
import pytest

from emoray import storage


@pytest.fixture
def tree(tmp_path):
    latin = os.fsencode(tmp_path / "caf") + b"\xe9 100%"  # Latin-1 "café 100%"
    os.mkdir(latin)
    with open(latin + b"/b\xff.wav", "wb") as f:
        f.write(b"bb")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.wav").write_bytes(b"a")
    (tmp_path / "real" / "up").symlink_to("..")  # a loop: not entered
    (tmp_path / "linked").symlink_to("real")  # a folder link: followed
    (tmp_path / "literal%E9.wav").write_bytes(b"c")  # valid UTF-8 that reads like an escape
    (tmp_path / "dangling.wav").symlink_to("gone/x.wav")
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    return tmp_path


def test_odd_names_and_links_are_listed(tree):
    files = storage.list_files(str(tree))
    assert [(f.uri[len(str(tree)) + 1:], f.size) for f in files] == [
        ("caf%E9 100%25/b%FF.wav", 2), ("dangling.wav", 0), ("linked/a.wav", 1),
        ("literal%E9.wav", 1), ("loop1", 0), ("loop2", 0), ("real/a.wav", 1)]
    assert pa.array([f.uri for f in files], pa.string()).to_pylist() == [f.uri for f in files]


def test_every_listed_file_reopens_from_its_uri(tree):
    content = {"caf%E9 100%25/b%FF.wav": b"bb", "linked/a.wav": b"a", "literal%E9.wav": b"c",
               "real/a.wav": b"a"}
    for rel, data in content.items():
        uri = f"{tree}/{rel}"
        assert storage.exists(uri) and storage.read_bytes(uri) == data, rel
        with storage.open_input_file(uri) as f:
            assert f.read() == data, rel


def test_a_link_that_leads_nowhere_says_where_it_points(tree):
    for read in (storage.read_bytes, storage.open_input_file):
        with pytest.raises(FileNotFoundError, match=r"^dangling symlink -> gone/x\.wav$"):
            read(f"{tree}/dangling.wav")
        with pytest.raises(OSError) as e:
            read(f"{tree}/loop1")
        assert e.value.errno == errno.ELOOP and str(tree / "loop1") in str(e.value)
    assert not storage.exists(f"{tree}/dangling.wav")


def test_a_folder_named_in_bytes_python_decoded_is_listed_as_escaped(tree):
    """A command-line argument that is not UTF-8 arrives as Python decodes it (surrogates)."""
    argv = os.fsdecode(os.fsencode(tree / "caf") + b"\xe9 100%")
    escaped = f"{tree}/caf%E9 100%25"
    assert storage.absolute(argv) == escaped
    assert storage.list_files(argv) == storage.list_files(escaped) == [
        storage.FileEntry(f"{escaped}/b%FF.wav", 2)]


def test_escaping_is_lossless_for_every_byte():
    name = bytes(b for b in range(1, 256) if b != ord("/"))
    path = b"/nowhere/" + name + b"/" + name[::-1]
    uri = storage.local_uri(path)
    uri.encode()  # valid UTF-8
    assert storage.os_path(uri) == path
    assert storage.os_path("/nowhere/100%.wav") == "/nowhere/100%.wav"  # UTF-8 stays as it is
    assert storage.os_path("/nowhere/%41.wav") == "/nowhere/%41.wav"  # not an escape we write
