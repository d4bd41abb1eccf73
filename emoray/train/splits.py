"""Evaluation protocols: which trials train, validate and test.

``random``: a label-stratified random split (seeded). ``actors``: speaker-independent, either
named test actors or k folds by actor; validation actors are drawn from the remaining actors,
so no actor of a split's test set is seen in its training or validation sets. ``all``: every
actor trains (``val_fraction`` of them validate instead) and nothing is tested: the model to ship
once the folds have measured the recipe.

Splits are computed on the driver from the small metadata columns only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from emoray import manifest, storage

META_COLUMNS = ["trial_id", "label", "actor", "has_audio", "has_video"]


@dataclass(frozen=True)
class Split:
    name: str  # "random", "actors", or "fold<i>"
    train: tuple[str, ...]  # trial ids
    val: tuple[str, ...]
    test: tuple[str, ...]
    test_actors: tuple[int, ...] = ()
    val_actors: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "train": list(self.train), "val": list(self.val),
                "test": list(self.test), "test_actors": list(self.test_actors),
                "val_actors": list(self.val_actors)}

    @classmethod
    def from_dict(cls, d: dict) -> "Split":
        return cls(d["name"], *(tuple(d[k]) for k in ("train", "val", "test", "test_actors",
                                                         "val_actors")))


def read_metadata(data: str) -> pa.Table:
    """The metadata columns of every shard of preprocessing output ``data``."""
    tables = []
    for uri in manifest.shard_uris(data):
        fs, path = storage.filesystem(uri)
        tables.append(pq.read_table(path, columns=META_COLUMNS, filesystem=fs))
    meta = pa.concat_tables(tables)
    ids = meta.column("trial_id").to_numpy(zero_copy_only=False)
    if len(set(ids)) != len(ids):
        raise ValueError(f"{data}: trial ids are not unique; splits need one row per trial")
    return meta


def random_split(ids, labels, seed: int, test_fraction: float, val_fraction: float) -> Split:
    """Per class: ``test_fraction`` of its trials to test, then ``val_fraction`` of the rest to
    validation."""
    ids, labels = np.asarray(ids, object), np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round((len(idx) - n_test) * val_fraction))
        parts["test"] += list(idx[:n_test])
        parts["val"] += list(idx[n_test:n_test + n_val])
        parts["train"] += list(idx[n_test + n_val:])
    return Split("random", *(tuple(sorted(ids[parts[k]])) for k in ("train", "val", "test")))


def actor_folds(actors, folds: int, seed: int) -> list[tuple[int, ...]]:
    """Deal the actors into ``folds`` groups: shuffled male (odd) actors, then shuffled female
    (even) ones, round-robin, so each fold gets a fair share of both genders."""
    rng = np.random.default_rng(seed)
    unique = np.unique(np.asarray(actors))
    if not 2 <= folds <= len(unique):
        raise ValueError(f"folds={folds}: need 2 <= folds <= number of actors ({len(unique)})")
    order = [int(a) for g in (1, 0) for a in rng.permutation(unique[unique % 2 == g])]
    return [tuple(sorted(order[i::folds])) for i in range(folds)]


def actor_split(ids, actors, test_actors, val_fraction: float, seed: int,
                name: str = "actors") -> Split:
    """Test on ``test_actors``; validate on ``val_fraction`` of the other actors (at least one
    when the fraction is positive); train on the rest."""
    ids, actors = np.asarray(ids, object), np.asarray(actors)
    unique = set(np.unique(actors).tolist())
    missing = sorted(set(test_actors) - unique)
    if missing:
        raise ValueError(f"test actors {missing} have no trials in the data "
                         f"(actors present: {sorted(unique)})")
    rest = np.array(sorted(unique - set(test_actors)))
    n_val = max(1, int(round(len(rest) * val_fraction))) if val_fraction > 0 else 0
    if n_val >= len(rest):
        raise ValueError(f"{len(rest)} actors left after the test actors: too few to keep "
                         f"{n_val} for validation and still train")
    val_actors = tuple(sorted(np.random.default_rng(seed).choice(rest, n_val, replace=False)
                              .tolist()))

    def pick(group) -> tuple[str, ...]:
        return tuple(sorted(ids[np.isin(actors, list(group))]))

    train_actors = sorted(set(rest.tolist()) - set(val_actors))
    return Split(name, pick(train_actors), pick(val_actors), pick(test_actors),
                 tuple(sorted(int(a) for a in test_actors)), val_actors)


def make_splits(meta: pa.Table, protocol) -> list[Split]:
    """The splits a ``ProtocolConfig`` asks for: one, or one per fold."""
    ids = meta.column("trial_id").to_numpy(zero_copy_only=False)
    labels = meta.column("label").to_numpy()
    actors = meta.column("actor").to_numpy()
    if protocol.kind == "random":
        return [random_split(ids, labels, protocol.seed, protocol.test_fraction,
                             protocol.val_fraction)]
    if protocol.kind == "all":
        return [actor_split(ids, actors, (), protocol.val_fraction, protocol.seed, name="all")]
    if protocol.test_actors:
        return [actor_split(ids, actors, protocol.test_actors, protocol.val_fraction,
                            protocol.seed)]
    return [actor_split(ids, actors, group, protocol.val_fraction, protocol.seed + i,
                        name=f"fold{i}")
            for i, group in enumerate(actor_folds(actors, protocol.folds, protocol.seed))]
