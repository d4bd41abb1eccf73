"""Labeling: a model artifact + an archive of media -> label rows in Parquet parts (Ray Data)."""
