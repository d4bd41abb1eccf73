"""Training on Ray: ``train(TrainConfig)`` runs the audio, video and fusion stages per split
and writes model artifacts and a report (see ``emoray.train.run``)."""

from emoray.train.config import TrainConfig, load_train_config, train_config
from emoray.train.run import train

__all__ = ["TrainConfig", "load_train_config", "train", "train_config"]
