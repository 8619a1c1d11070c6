#!/usr/bin/env python3
"""DS2-small in PyTorch, trained straight from ds2-data shards.

The data path is the package's: ``SpectrogramDataset`` (normalized float32 features from
the LMDB shards), ``SortaGradBatchSampler`` (the batches and order of ``ds2-data train``:
epoch 1 ascending, later epochs shuffled) and ``collate`` (padded ``[B, F, T]`` for the
conv layer, concatenated targets for ``nn.CTCLoss``), in a ``DataLoader`` with worker
processes. The model is the deepspeech.pytorch layout: Conv2d 41×11 stride 2×2 → BN →
clipped ReLU, bidirectional GRUs (directions summed) with sequence-wise BN, BN → Linear →
CTC.

    pip install './python[torch]'
    python examples/pytorch_ds2.py out/mini-librispeech --epochs 20
    python examples/pytorch_ds2.py out/mini-librispeech --max-seconds 30 --hidden 64 --layers 1   # the test's version

Prints the mean CTC loss per epoch (and per step with --verbose) and, at the end, the first
and last epochs' losses and the data-wait share of the step time.
"""

import argparse
import time

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ds2data.torch import SortaGradBatchSampler, SpectrogramDataset, collate

CLIP = 20.0


class SequenceBatchNorm(nn.Module):
    """Batch normalization over every (time, batch) position."""

    def __init__(self, features):
        super().__init__()
        self.norm = nn.BatchNorm1d(features)

    def forward(self, x):  # (T, N, H)
        t, n, h = x.shape
        return self.norm(x.reshape(t * n, h)).reshape(t, n, h)


class DS2(nn.Module):
    def __init__(self, bins, vocabulary, channels=32, hidden=256, layers=3):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=(41, 11), stride=(2, 2), padding=(20, 5)),
            nn.BatchNorm2d(channels), nn.Hardtanh(0, CLIP, inplace=True))
        frequencies = (bins + 2 * 20 - 41) // 2 + 1
        self.rnns = nn.ModuleList()
        self.norms = nn.ModuleList()
        size = channels * frequencies
        for _ in range(layers):
            self.norms.append(SequenceBatchNorm(size))
            self.rnns.append(nn.GRU(size, hidden, bidirectional=True))
            size = hidden
        self.output_norm = SequenceBatchNorm(hidden)
        self.output = nn.Linear(hidden, vocabulary, bias=False)
        self.hidden = hidden

    def output_lengths(self, lengths):
        return (lengths + 2 * 5 - 11) // 2 + 1

    def forward(self, features, lengths):  # features (B, F, T)
        x = self.conv(features.unsqueeze(1))  # (B, C, F', T')
        b, c, f, t = x.shape
        x = x.permute(3, 0, 1, 2).reshape(t, b, c * f)
        out_lengths = self.output_lengths(lengths)
        for norm, rnn in zip(self.norms, self.rnns):
            packed = nn.utils.rnn.pack_padded_sequence(norm(x), out_lengths, enforce_sorted=False)
            y, _ = rnn(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, total_length=t)
            x = y[..., : self.hidden] + y[..., self.hidden:]
        return self.output(self.output_norm(x)).log_softmax(2), out_lengths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", help="ds2-data dataset folders (training splits are used)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after this much training time")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    data = SpectrogramDataset(args.datasets)
    sampler = SortaGradBatchSampler(data, batch_size=args.batch_size, seed=args.seed)
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=collate, num_workers=args.workers,
                        persistent_workers=args.workers > 0)
    model = DS2(data.bins, len(data.vocabulary), channels=args.channels, hidden=args.hidden, layers=args.layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    started = time.monotonic()
    step_seconds = wait_seconds = 0.0
    epoch_losses = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        losses = []
        before = time.monotonic()
        for features, lengths, targets, target_lengths in loader:
            loaded = time.monotonic()
            log_probs, out_lengths = model(features, lengths)
            loss = ctc(log_probs, targets, out_lengths, target_lengths)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 400)
            optimizer.step()
            done = time.monotonic()
            wait_seconds += loaded - before
            step_seconds += done - before
            before = done
            losses.append(loss.item())
            if args.verbose:
                print(f"epoch {epoch + 1} step {len(losses)}: loss {loss.item():.3f}", flush=True)
            if args.max_seconds and done - started > args.max_seconds:
                break
        epoch_losses.append(sum(losses) / len(losses))
        print(f"epoch {epoch + 1}: mean CTC loss {epoch_losses[-1]:.3f} ({len(losses)} steps)", flush=True)
        if args.max_seconds and time.monotonic() - started > args.max_seconds:
            break
    print(f"loss {epoch_losses[0]:.3f} → {epoch_losses[-1]:.3f} in {len(epoch_losses)} epoch(s), "
          f"{time.monotonic() - started:.1f} s; data wait {100 * wait_seconds / max(step_seconds, 1e-9):.2f} % of step time")


if __name__ == "__main__":
    main()
