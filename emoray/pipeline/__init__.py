"""The whole pipeline as one job: preprocess -> train -> label (``jobs/pipeline.py``)."""

from emoray.pipeline.config import PipelineConfig, load_pipeline_config, pipeline_config
from emoray.pipeline.run import run_pipeline

__all__ = ["PipelineConfig", "load_pipeline_config", "pipeline_config", "run_pipeline"]
