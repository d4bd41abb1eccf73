"""The RAVDESS catalog: media files -> one row per trial with its audio and video sources.

A trial's audio comes from its audio-only ``03-*`` file, its video from its video-only ``02-*``
file; a full-AV ``01-*`` file supplies whichever of the two is missing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from emoray.ravdess import RavdessName, RavdessNameError, parse_name
from emoray.storage import FileEntry

AUDIO_EXTS = (".wav", ".flac", ".mp3", ".m4a", ".ogg")
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi")
MEDIA_EXTS = AUDIO_EXTS + VIDEO_EXTS


@dataclass(frozen=True)
class Trial:
    name: RavdessName  # fields of the trial; ``name.modality`` is that of its first source
    audio_uri: str | None
    video_uri: str | None

    @property
    def trial_id(self) -> str:
        return self.name.trial_id


@dataclass(frozen=True)
class CatalogError:
    uri: str
    reason: str


@dataclass
class Catalog:
    trials: list[Trial]  # sorted by trial_id
    errors: list[CatalogError]
    ignored: list[str]  # files that are not media (by extension)


def is_media(uri: str) -> bool:
    return uri.lower().endswith(MEDIA_EXTS)


def build_catalog(files: list[FileEntry]) -> Catalog:
    """Pair files into trials. Pure: names only, no file is opened."""
    slots: dict[str, dict[int, str]] = defaultdict(dict)  # trial_id -> {modality: uri}
    names: dict[str, RavdessName] = {}
    errors: list[CatalogError] = []
    ignored: list[str] = []
    for f in sorted(files, key=lambda f: f.uri):
        if not is_media(f.uri):
            ignored.append(f.uri)
            continue
        try:
            name = parse_name(f.uri)
        except RavdessNameError as e:
            errors.append(CatalogError(f.uri, str(e)))
            continue
        taken = slots[name.trial_id].get(name.modality)
        if taken is not None:
            errors.append(CatalogError(f.uri, f"same trial and modality as {taken}"))
            continue
        slots[name.trial_id][name.modality] = f.uri
        names.setdefault(name.trial_id, name)
    trials = []
    for tid in sorted(slots):
        s = slots[tid]
        trials.append(Trial(names[tid], audio_uri=s.get(3) or s.get(1),
                            video_uri=s.get(2) or s.get(1)))
    return Catalog(trials, errors, ignored)


def find_duplicates(hashes: dict[str, str]) -> list[list[str]]:
    """Groups (sorted) of URIs whose contents are byte-identical, from ``{uri: sha256}``."""
    by_hash: dict[str, list[str]] = defaultdict(list)
    for uri, digest in hashes.items():
        by_hash[digest].append(uri)
    return sorted(sorted(g) for g in by_hash.values() if len(g) > 1)
