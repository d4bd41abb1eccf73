"""The per-worker training loop (Ray Train) and the epoch functions it is made of.

``train_loop`` runs on every worker: it restores from ``ray.train.get_checkpoint()``, trains
on its shard of the ``train`` dataset (DDP via ``prepare_model``), validates on rank 0, reports
a checkpoint every epoch, and finally tests the final model on rank 0 (when the split has a
test set). ``spec`` is a plain dict (see ``emoray.train.stage.stage_spec``).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Iterable

import numpy as np
import torch
from torch import nn

from emoray.features.config import FeatureConfig
from emoray.models import FusionHead, build_branch
from emoray.models.config import from_dict
from emoray.train.metrics import confusion, scores
from emoray.train.schedule import lr_at

STATE_FILE = "state.pt"


def build_trainable(spec: dict) -> nn.Module:
    """The network a stage trains: a branch, or for fusion only its head."""
    kind = spec["kind"]
    cfg = from_dict(kind, spec["model"])
    if kind == "fusion":
        return FusionHead(cfg, *spec["embed_dims"])
    return build_branch(kind, cfg, FeatureConfig.from_dict(spec["features"]))


def loss_function(spec: dict, device) -> nn.Module:
    weight = spec.get("class_weights")
    return nn.CrossEntropyLoss(
        weight=torch.tensor(weight, dtype=torch.float32, device=device) if weight else None,
        label_smoothing=spec.get("label_smoothing", 0.0))


def mix(xs: list[torch.Tensor], y: torch.Tensor, alpha: float):
    """Mixup: each input becomes ``lam * x + (1 - lam) * x[perm]``, lam ~ Beta(alpha, alpha)
    per batch; returns the mixed inputs, lam and the partner labels ``y[perm]``."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(y), device=y.device)
    return [lam * x.float() + (1 - lam) * x[perm].float() for x in xs], lam, y[perm]


def train_epoch(model: nn.Module, batches: Iterable[dict], inputs: list[str], loss_fn,
                optimizer, sync=lambda: None, lr_of_step=None, mixup: float = 0.0) -> dict:
    """One pass over ``batches``; returns sums (loss, correct, n) and the seconds spent
    waiting for batches (``first_wait_s`` of it for the first: the pipeline's start-up)
    versus computing. ``lr_of_step(i)``, when given, sets the rate of the epoch's i-th step;
    ``mixup`` > 0 mixes pairs of clips (see ``mix``), and accuracy counts the first label.
    A model whose training output is logits of several members [B, M, C] (``AudioEnsemble``)
    learns from the sum of the members' losses, each on its own logits, so each member's
    gradients are those it would have alone; loss is reported as their mean, and accuracy is
    that of their mean probabilities."""
    model.train()
    step = 0
    loss_sum = correct = n = 0.0
    wait = compute = first_wait = 0.0
    it = iter(batches)
    while True:
        t0 = time.perf_counter()
        batch = next(it, None)
        t1 = time.perf_counter()
        wait += t1 - t0
        first_wait = first_wait or t1 - t0
        if batch is None:
            break
        y = batch["label"].long()
        if lr_of_step is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_of_step(step)
        step += 1
        xs = [batch[k] for k in inputs]
        if mixup:
            xs, lam, y2 = mix(xs, y, mixup)
        logits = model(*xs)
        members = logits.unbind(1) if logits.dim() == 3 else (logits,)
        loss = sum(lam * loss_fn(m, y) + (1 - lam) * loss_fn(m, y2) if mixup else loss_fn(m, y)
                   for m in members)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() / len(members) * len(y)
        predicted = sum(torch.softmax(m.detach(), 1) for m in members).argmax(1)
        correct += (predicted == y).sum().item()
        n += len(y)
        sync()
        compute += time.perf_counter() - t1
    return {"loss_sum": loss_sum, "correct": correct, "n": n, "wait_s": wait,
            "first_wait_s": first_wait, "compute_s": compute}


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[dict], inputs: list[str], device,
            zero: str | None = None, loss_fn=None) -> dict:
    """Labels, predictions and (with ``loss_fn``) mean loss over numpy or torch batches;
    ``zero`` names an input to replace by zeros (ablation)."""
    model.eval()
    y_true, y_pred, ids, loss_sum = [], [], [], 0.0
    for batch in batches:
        x = [torch.as_tensor(batch[k]).to(device) for k in inputs]
        if zero:
            x = [torch.zeros_like(v) if k == zero else v for k, v in zip(inputs, x)]
        y = torch.as_tensor(batch["label"]).long().to(device)
        logits = model(*x)
        if loss_fn is not None:
            loss_sum += loss_fn(logits, y).item() * len(y)
        y_true.append(y.cpu().numpy())
        y_pred.append(logits.argmax(1).cpu().numpy())
        if "trial_id" in batch:
            ids += [str(i) for i in batch["trial_id"]]
    y_true = np.concatenate(y_true) if y_true else np.zeros(0, np.int64)
    y_pred = np.concatenate(y_pred) if y_pred else np.zeros(0, np.int64)
    return {"y_true": y_true.tolist(), "y_pred": y_pred.tolist(), "trial_id": ids,
            "loss": loss_sum / max(1, len(y_true))}


def fresh_state() -> dict:
    return {"epoch": 0, "model": None, "optimizer": None, "history": [], "starts": [],
            "best": None, "stale": 0, "stopped": False, "test": None}


def train_loop(spec: dict) -> None:
    """Ray Train worker entry point."""
    import ray.train
    import ray.train.torch
    import torch.distributed as dist

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(spec["threads"])
    device = ray.train.torch.get_device()
    distributed = world > 1 and dist.is_available() and dist.is_initialized()

    state = fresh_state()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            state = torch.load(os.path.join(d, STATE_FILE), map_location="cpu",
                               weights_only=True)
    state["starts"].append(state["epoch"])

    torch.manual_seed(spec["seed"])
    net = build_trainable(spec)
    if state["model"] is not None:
        net.load_state_dict(state["model"])
    model = ray.train.torch.prepare_model(net)
    optimizer = torch.optim.AdamW(net.parameters(), lr=spec["lr"],
                                  weight_decay=spec["weight_decay"])
    if state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    loss_fn = loss_function(spec, device)
    inputs = spec["inputs"]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    train_it = ray.train.get_dataset_shard("train")
    while state["epoch"] < spec["epochs"] and not state["stopped"]:
        epoch = state["epoch"]
        torch.manual_seed(spec["seed"] * 100_003 + epoch * 101 + rank)
        t0 = time.perf_counter()
        stats = train_epoch(model, train_it.iter_torch_batches(
            batch_size=spec["batch_size"], local_shuffle_buffer_size=spec["shuffle_buffer"],
            local_shuffle_seed=spec["seed"] + epoch, prefetch_batches=2, drop_last=True),
            inputs, loss_fn, optimizer, sync, lambda i: lr_at(
                spec["schedule"], spec["lr"],
                (epoch + i / spec["steps_per_epoch"]) / spec["epochs"]), spec["mixup"])
        wall = time.perf_counter() - t0
        sums = torch.tensor([stats[k] for k in ("loss_sum", "correct", "n", "wait_s",
                                                "first_wait_s", "compute_s")],
                            dtype=torch.float64)
        walls = torch.tensor([wall], dtype=torch.float64)
        if distributed:
            dist.all_reduce(sums)
            dist.all_reduce(walls, op=dist.ReduceOp.MAX)
        loss_sum, correct, n, wait, first, compute = sums.tolist()
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(n, 1),
               "train_acc": correct / max(n, 1), "samples": int(n),
               "samples_per_s": n / walls.item(),
               "data_wait_share": wait / max(wait + compute, 1e-9),
               "steady_data_wait_share": (wait - first) / max(wait - first + compute, 1e-9),
               "first_batch_s": first / world}
        val = None
        if rank == 0 and spec["has_val"]:
            val = predict(net, ray.train.get_dataset_shard("val").iter_batches(
                batch_size=spec["batch_size"], batch_format="numpy"), inputs, device,
                loss_fn=loss_fn)
            s = scores(confusion(val["y_true"], val["y_pred"]))
            val = {"val_loss": val["loss"], "val_acc": s["accuracy"], "val_uar": s["uar"]}
        if distributed:
            box = [val]
            dist.broadcast_object_list(box, src=0)
            val = box[0]
        row.update(val or {})
        state["history"].append(row)
        state["epoch"] = epoch + 1
        if val is not None:
            if state["best"] is None or val["val_uar"] > state["best"]["val_uar"]:
                state["best"] = {"epoch": epoch + 1, "val_uar": val["val_uar"],
                                 "model": _copy(net.state_dict())}
                state["stale"] = 0
            else:
                state["stale"] += 1
            state["stopped"] = 0 < spec["patience"] <= state["stale"]
        state["model"] = _copy(net.state_dict())
        state["optimizer"] = optimizer.state_dict()
        _report(state, row, rank)

    if spec["keep_best"] and state["best"] is not None:
        net.load_state_dict(state["best"]["model"])
    test = None
    if rank == 0 and spec["has_test"]:
        batches = lambda: ray.train.get_dataset_shard("test").iter_batches(  # noqa: E731
            batch_size=spec["batch_size"], batch_format="numpy")
        test = predict(net, batches(), inputs, device)
        if spec["kind"] == "fusion":
            test["ablation"] = {f"no_{k[:-4]}": _accuracy(predict(net, batches(), inputs,
                                                                  device, zero=k))
                                for k in inputs}
    state["test"] = test
    state["final_model"] = _copy(net.state_dict())
    _report(state, {"epoch": state["epoch"], "final": True}, rank)


def _copy(state_dict: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in state_dict.items()}


def _accuracy(pred: dict) -> float:
    y, p = np.asarray(pred["y_true"]), np.asarray(pred["y_pred"])
    return float((y == p).mean()) if len(y) else 0.0


def _report(state: dict, metrics: dict, rank: int) -> None:
    import ray.train

    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, os.path.join(d, STATE_FILE))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
