import numpy as np
import pyarrow as pa
import pytest

from emoray.config import ConfigError
from emoray.train.config import ProtocolConfig
from emoray.train.splits import actor_folds, actor_split, make_splits, random_split


def corpus(n_actors=24):
    """RAVDESS speech design: 60 trials per actor, neutral half as frequent."""
    ids, labels, actors = [], [], []
    for actor in range(1, n_actors + 1):
        for label in range(8):
            for k in range(4 if label == 0 else 8):
                ids.append(f"{actor}-{label}-{k}")
                labels.append(label)
                actors.append(actor)
    return pa.table({"trial_id": ids, "label": np.array(labels, np.int8),
                     "actor": np.array(actors, np.int8)})


def columns(meta):
    return (meta.column("trial_id").to_numpy(zero_copy_only=False),
            meta.column("label").to_numpy(), meta.column("actor").to_numpy())


def test_random_split_is_stratified_disjoint_and_seeded():
    ids, labels, _ = columns(corpus())
    split = random_split(ids, labels, seed=3, test_fraction=0.2, val_fraction=0.25)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert sum(map(len, parts)) == len(ids) == len(set().union(*parts))
    label_of = dict(zip(ids, labels))
    for c in range(8):
        n = int((labels == c).sum())
        in_test = sum(label_of[i] == c for i in split.test)
        in_val = sum(label_of[i] == c for i in split.val)
        assert in_test == round(n * 0.2)
        assert in_val == round((n - in_test) * 0.25)
    assert split == random_split(ids, labels, 3, 0.2, 0.25)
    assert split != random_split(ids, labels, 4, 0.2, 0.25)


def test_actor_split_keeps_test_actors_out_of_training_and_validation():
    ids, _, actors = columns(corpus())
    actor_of = dict(zip(ids, actors))
    split = actor_split(ids, actors, [21, 22, 23, 24], val_fraction=0.2, seed=0)
    test_actors = {actor_of[i] for i in split.test}
    assert test_actors == {21, 22, 23, 24}
    assert not test_actors & {actor_of[i] for i in split.train + split.val}
    assert len(split.val_actors) == 4 and not set(split.val_actors) & test_actors
    assert {actor_of[i] for i in split.val} == set(split.val_actors)
    with pytest.raises(ValueError, match=r"test actors \[30\]"):
        actor_split(ids, actors, [30], 0.2, 0)


def test_actor_folds_partition_the_actors_with_both_genders():
    _, _, actors = columns(corpus())
    folds = actor_folds(actors, 6, seed=1)
    assert sorted(a for f in folds for a in f) == list(range(1, 25))
    assert all(len(f) == 4 and {a % 2 for a in f} == {0, 1} for f in folds)
    with pytest.raises(ValueError, match="folds=30"):
        actor_folds(actors, 30, 0)


def test_make_splits_per_protocol():
    meta = corpus(n_actors=12)
    ids, _, actors = columns(meta)
    actor_of = dict(zip(ids, actors))
    (split,) = make_splits(meta, ProtocolConfig(kind="random"))
    assert split.name == "random"
    folds = make_splits(meta, ProtocolConfig(kind="actors", folds=3, val_fraction=0.25))
    assert [s.name for s in folds] == ["fold0", "fold1", "fold2"]
    tested = []
    for s in folds:
        test_actors = {actor_of[i] for i in s.test}
        assert test_actors == set(s.test_actors)
        assert not test_actors & {actor_of[i] for i in s.train + s.val}
        tested += s.test_actors
    assert sorted(tested) == list(range(1, 13))
    (held_out,) = make_splits(meta, ProtocolConfig(kind="actors", test_actors=[1, 2]))
    assert held_out.test_actors == (1, 2)
    (everyone,) = make_splits(meta, ProtocolConfig(kind="all", val_fraction=0))
    assert everyone.name == "all" and not everyone.test and not everyone.val
    assert sorted(everyone.train) == sorted(ids)
    (shipped,) = make_splits(meta, ProtocolConfig(kind="all", val_fraction=0.25))
    assert len(shipped.val_actors) == 3 and not shipped.test
    assert not {actor_of[i] for i in shipped.train} & set(shipped.val_actors)
    with pytest.raises(ConfigError, match="need kind: actors"):
        ProtocolConfig(kind="all", folds=3).validate()
