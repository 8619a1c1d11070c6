"""PyTorch: a map-style Dataset over ds2-data datasets, the SortaGrad batch sampler of
``ds2-data train``, and a collate function for ``torch.nn.CTCLoss``."""

import os

import numpy as np
import torch
from torch.utils.data import Dataset as _TorchDataset
from torch.utils.data import Sampler

from .batches import batch_plan, epoch_order
from .dataset import open as _open

__all__ = ["SpectrogramDataset", "SortaGradBatchSampler", "Collate", "collate", "make_collate"]


class SpectrogramDataset(_TorchDataset):
    """The records of one or more datasets (e.g. clean + augmented) as one map-style
    dataset, in the trainer's record order: datasets in the order given, each dataset's
    splits in order, each split in stored (ascending length) order.

    ``split``: a name, a list of names, or None for the first dataset's training splits
    (every dataset must have them, as for ``ds2-data train``). ``max_frames``: leave out
    records longer than this (``training.maxFrames``). Item ``i`` is
    ``(features [T, F] float32, labels int32, id)``.
    The index is numpy arrays built here, so DataLoader workers (fork or spawn) share it;
    LMDB is opened lazily in each worker.
    """

    def __init__(self, path_or_paths, split=None, normalize=True, verify_checksums=True, max_frames=None):
        paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
        if not paths:
            raise ValueError("no dataset given")
        self.datasets = [_open(p, normalize=normalize, verify_checksums=verify_checksums) for p in paths]
        first = self.datasets[0]
        for other in self.datasets[1:]:
            if other.bins != first.bins or other.vocabulary != first.vocabulary:
                raise ValueError(f"{other.path}: its bins or vocabulary differ from {first.path}'s; datasets read together must match")
        names = first.training_splits if split is None else ([split] if isinstance(split, str) else list(split))
        if not names:
            raise ValueError(f"{first.path}: no training split; name one with split=")
        self.splits = names
        dataset_index, split_index, position, frames = [], [], [], []
        self._split_objects = []
        for d, dataset in enumerate(self.datasets):
            for name in names:
                if name not in dataset:
                    raise KeyError(f"{dataset.path}: no split {name!r} (splits: {', '.join(dataset.splits)})")
                part = dataset[name]
                self._split_objects.append(part)
                count = len(part)
                keep = np.ones(count, dtype=bool) if max_frames is None else part.frames <= max_frames
                dataset_index.append(np.full(int(keep.sum()), d, dtype=np.int32))
                split_index.append(np.full(int(keep.sum()), len(self._split_objects) - 1, dtype=np.int32))
                position.append(np.nonzero(keep)[0].astype(np.int64))
                frames.append(part.frames[keep])
        self.dataset_index = np.concatenate(dataset_index)
        self._split_index = np.concatenate(split_index)
        self._position = np.concatenate(position)
        self.frames = np.concatenate(frames).astype(np.int64)
        self.bins = first.bins
        self.vocabulary = first.vocabulary

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, index):
        record = self._split_objects[self._split_index[index]].record(int(self._position[index]))
        return torch.from_numpy(record.features), torch.from_numpy(record.labels), record.id


class SortaGradBatchSampler(Sampler):
    """Batches of ``dataset`` (a ``SpectrogramDataset``, or anything with ``frames`` and
    optionally ``dataset_index`` arrays) exactly as ``ds2-data train`` forms and orders
    them for ``seed`` (its ``training.seed``): cut from the length order by count
    (``batch_size``) and total padded frames (``max_batch_frames``); epoch 0 ascending
    (SortaGrad), later epochs shuffled (docs/TRAINING.md).

    With ``world_size`` > 1, like ``DistributedSampler``: every rank walks the same batch
    sequence and takes utterances ``rank, rank + world_size, …`` of each batch (as the
    ranks of ``mpirun ds2-data train`` do), so ``batch_size`` is the global batch and every
    rank yields the same number of batches; a batch with fewer utterances than ranks is
    padded by repeating its utterances (as ``DistributedSampler`` pads).
    ``set_epoch`` before each epoch; ``state_dict``/``load_state_dict`` resume mid-epoch.
    """

    def __init__(self, dataset, batch_size=16, max_batch_frames=None, seed=0, sorta_grad=True, rank=0, world_size=1):
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive integer, not {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank!r} is not in 0…{world_size - 1} (world_size {world_size})")
        self.batches = batch_plan(
            dataset.frames, getattr(dataset, "dataset_index", None), batch_size=batch_size, max_batch_frames=max_batch_frames)
        self.seed = seed
        self.sorta_grad = sorta_grad
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._start = 0
        self._done = 0

    def set_epoch(self, epoch):
        if epoch != self.epoch:
            self._start = 0
        self.epoch = epoch

    def __len__(self):
        return len(self.batches) - self._start

    def __iter__(self):
        order = epoch_order(len(self.batches), self.seed, self.epoch, self.sorta_grad)
        start = self._start
        self._start = 0
        for done, index in enumerate(order[start:], start=start):
            self._done = done + 1
            batch = self.batches[index]
            if self.world_size == 1:
                yield batch.tolist()
                continue
            padded = np.resize(batch, max(len(batch), self.world_size)) if len(batch) < self.world_size else batch
            yield padded[self.rank::self.world_size].tolist()

    def state_dict(self):
        """Where the sampler is: the epoch and how many of its batches were handed out."""
        return {"epoch": self.epoch, "batches_done": self._done, "seed": self.seed, "batches": len(self.batches)}

    def load_state_dict(self, state):
        if state.get("batches") not in (None, len(self.batches)) or state.get("seed", self.seed) != self.seed:
            raise ValueError("the state is of a sampler over other records or another seed")
        self.epoch = state["epoch"]
        self._start = state["batches_done"]
        self._done = self._start


class Collate:
    """Collates ``SpectrogramDataset`` items into ``(features, feature_lengths, targets,
    target_lengths)``: features zero-padded, ``[B, F, T]`` (layout "BFT") or ``[B, T, F]``
    ("BTF"), float32; lengths int64; targets the concatenated label ids (int64), as
    ``torch.nn.CTCLoss`` takes them. A class, so that spawned DataLoader workers can
    unpickle it."""

    def __init__(self, layout="BFT"):
        if layout not in ("BFT", "BTF"):
            raise ValueError(f"layout must be BFT or BTF, not {layout!r}")
        self.layout = layout

    def __call__(self, items):
        lengths = torch.tensor([f.shape[0] for f, _, _ in items], dtype=torch.int64)
        bins = items[0][0].shape[1]
        features = torch.zeros(len(items), int(lengths.max()), bins, dtype=torch.float32)
        for b, (f, _, _) in enumerate(items):
            features[b, : f.shape[0]] = f
        if self.layout == "BFT":
            features = features.transpose(1, 2).contiguous()
        targets = torch.cat([labels.to(torch.int64) for _, labels, _ in items])
        target_lengths = torch.tensor([len(labels) for _, labels, _ in items], dtype=torch.int64)
        return features, lengths, targets, target_lengths


def make_collate(layout="BFT"):
    """``Collate(layout)``."""
    return Collate(layout)


#: ``Collate("BFT")``: features ``[B, F, T]``.
collate = Collate("BFT")
