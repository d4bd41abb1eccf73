"""The epoch function Ray Train workers run, on plain tensors (no Ray)."""

import pytest
import torch

from emoray.train.loop import predict, train_epoch


@pytest.mark.parametrize("mixup", [0.0, 0.4])
def test_train_epoch_learns_separable_classes_with_and_without_mixup(mixup):
    torch.manual_seed(0)
    centres = torch.randn(8, 16) * 3
    y = torch.arange(8).repeat(64)
    x = centres[y] + torch.randn(len(y), 16)
    batches = [{"x": x[i:i + 32], "label": y[i:i + 32]} for i in range(0, len(y), 32)]
    model = torch.nn.Linear(16, 8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(10):
        stats = train_epoch(model, batches, ["x"], torch.nn.CrossEntropyLoss(), optimizer,
                            mixup=mixup)
    assert stats["n"] == len(y)
    pred = predict(model, batches, ["x"], "cpu")
    accuracy = (torch.tensor(pred["y_pred"]) == torch.tensor(pred["y_true"])).float().mean()
    assert accuracy > 0.95  # chance: 1/8
