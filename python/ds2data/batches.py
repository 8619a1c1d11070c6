"""The batches of ``ds2-data train`` (Sources/Trainer/Batcher.swift), in numpy.

Records are sorted by (frames, dataset, position in the record list) and cut, in that
order, into consecutive batches of ``batch_size`` records, or fewer when
``max_batch_frames`` caps records × longest frames (a record longer than the cap forms a
batch alone); each batch lists its records longest first. Epoch 0 visits the batches in
ascending length (SortaGrad); every other epoch, and epoch 0 without SortaGrad, in a
Fisher–Yates shuffle drawn from SplitMix64 seeded by (seed, "batch-order", epoch).
"""

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class SeededGenerator:
    """ds2-data's SeededGenerator (Sources/DS2Core/SeededGenerator.swift): SplitMix64."""

    def __init__(self, state):
        self.state = state & _MASK

    def next(self):
        self.state = (self.state + _GOLDEN) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)


def seeded_generator(seed, id=None, copy=0):  # noqa: A002
    """The generator ds2-data derives for ``(seed, id, copy)`` (or from ``seed`` alone)."""
    if id is None:
        return SeededGenerator(seed)
    digest = 0xCBF29CE484222325
    for byte in id.encode("utf-8"):
        digest = ((digest ^ byte) * 0x100000001B3) & _MASK
    mixer = SeededGenerator(seed ^ _GOLDEN)
    generator = SeededGenerator(mixer.next() ^ digest ^ (((copy & _MASK) * 0xD6E8FEB86659FD93) & _MASK))
    generator.next()
    return generator


def batch_plan(frames, dataset_index=None, batch_size=16, max_batch_frames=None):
    """The batches, each an int64 array of record indices (into ``frames``) longest first.

    ``frames[i]`` and ``dataset_index[i]`` describe record ``i`` of the trainer's record
    list (datasets in order, each dataset's training splits in order, each split in stored
    order).
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    if max_batch_frames is not None and max_batch_frames < 1:
        raise ValueError(f"max_batch_frames must be positive, not {max_batch_frames!r}")
    frames = np.asarray(frames, dtype=np.int64)
    datasets = np.zeros(len(frames), dtype=np.int64) if dataset_index is None else np.asarray(dataset_index, dtype=np.int64)
    order = np.lexsort((np.arange(len(frames)), datasets, frames))
    batches = []
    current = []
    for record in order:
        would_pad = (len(current) + 1) * int(frames[record])
        if current and (len(current) == batch_size or (max_batch_frames is not None and would_pad > max_batch_frames)):
            batches.append(np.array(current[::-1], dtype=np.int64))
            current = []
        current.append(record)
    if current:
        batches.append(np.array(current[::-1], dtype=np.int64))
    return batches


def epoch_order(batch_count, seed, epoch, sorta_grad=True):
    """Batch indices in the order epoch ``epoch`` (0-based) visits them."""
    order = list(range(batch_count))
    if epoch == 0 and sorta_grad:
        return order
    generator = seeded_generator(seed, "batch-order", epoch)
    for i in range(batch_count - 1, 0, -1):
        j = generator.next() % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order
