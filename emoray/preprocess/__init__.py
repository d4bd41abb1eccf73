"""Preprocessing: RAVDESS-named media -> Parquet shards (see ``emoray.shards``)."""
