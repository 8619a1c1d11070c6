"""The PyTorch Dataset, SortaGrad sampler and collate."""

import json
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import ds2data
from conftest import run
from ds2data.torch import SortaGradBatchSampler, SpectrogramDataset, collate, make_collate


def batches(data, sampler, workers, context=None):
    loader = DataLoader(
        data, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
        multiprocessing_context=context if workers else None)
    return [tuple(t.clone() for t in batch) for batch in loader]


def test_loader_with_workers_fork_and_spawn(datasets):
    data = SpectrogramDataset([datasets["float16-global"], datasets["augmented"]])
    assert len(data) == len(ds2data.open(datasets["float16-global"])["train-clean-100"]) + len(
        ds2data.open(datasets["augmented"])["train-clean-100"])
    sampler = SortaGradBatchSampler(data, batch_size=8, seed=3)
    sampler.set_epoch(1)
    expected = batches(data, sampler, 0)
    for context in ("fork", "spawn"):
        got = batches(data, sampler, 2, context)
        assert len(got) == len(expected)
        for a, b in zip(expected, got):
            for x, y in zip(a, b):
                assert torch.equal(x, y), context
    features, lengths, targets, target_lengths = expected[0]
    assert features.shape[:2] == (len(lengths), data.bins) and features.shape[2] == int(lengths.max())
    assert targets.shape == (int(target_lengths.sum()),)
    assert make_collate("BTF")([data[0], data[1]])[0].shape[2] == data.bins
    # Ready for CTC: a loss from random log-probabilities is finite.
    log_probs = torch.randn(int(lengths.max()), len(lengths), len(data.vocabulary)).log_softmax(2)
    loss = torch.nn.CTCLoss(zero_infinity=True)(log_probs, targets, lengths, target_lengths)
    assert torch.isfinite(loss)


def test_sampler_walks_the_trainers_batches(datasets, tmp_path):
    """`ds2-data train` logs each step's utterance count and longest frames: the sampler's
    batches for the same seed give the same sequence, in epoch 1 (ascending) and epoch 2
    (shuffled)."""
    model = tmp_path / "model.yaml"
    model.write_text(
        "model:\n  convolutions: [{channels: 2, kernelTime: 5, kernelFrequency: 21, strideTime: 2, strideFrequency: 4}]\n"
        "  recurrentLayers: 1\n  hidden: 8\n"
        "training: {epochs: 2, batchSize: 5, optimizer: adam, learningRate: 1.0e-3, threads: 1, seed: 77}\n")
    out = str(tmp_path / "run")
    run("train", datasets["float16-global"], "--model", str(model), "--output", out, "-q")
    steps = [json.loads(line) for line in open(f"{out}/metrics.jsonl") if '"type":"step"' in line]
    data = SpectrogramDataset(datasets["float16-global"])
    sampler = SortaGradBatchSampler(data, batch_size=5, seed=77)
    walked = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        walked += [(epoch + 1, len(batch), int(data.frames[batch].max())) for batch in sampler]
    assert walked == [(s["epoch"], s["utterances"], s["frames"]) for s in steps]


def test_resume_mid_epoch_and_ranks(datasets):
    data = SpectrogramDataset(datasets["float16-global"])
    sampler = SortaGradBatchSampler(data, batch_size=4, seed=5)
    sampler.set_epoch(2)
    whole = list(sampler)
    iterator = iter(sampler)
    first = [next(iterator) for _ in range(3)]
    state = sampler.state_dict()
    assert state["batches_done"] == 3 and state["epoch"] == 2
    resumed = SortaGradBatchSampler(data, batch_size=4, seed=5)
    resumed.load_state_dict(state)
    assert first + list(resumed) == whole
    shares = []
    for rank in (0, 1):
        ranked = SortaGradBatchSampler(data, batch_size=4, seed=5, rank=rank, world_size=2)
        ranked.set_epoch(2)
        shares.append(list(ranked))
    assert len(shares[0]) == len(shares[1]) == len(whole)
    for batch, a, b in zip(whole, *shares):
        assert sorted(a + b) == sorted(batch) or len(batch) < 2
    with pytest.raises(ValueError, match="rank 2 is not in 0…1"):
        SortaGradBatchSampler(data, batch_size=4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        SortaGradBatchSampler(data, batch_size=0)
