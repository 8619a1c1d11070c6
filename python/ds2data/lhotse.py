"""Lhotse: cuts whose features are read from the shards where they are (no copy).

Importing this module registers the features reader ``ds2data_lmdb`` with Lhotse. A
cut's features have ``storage_path`` = the dataset folder and ``storage_key`` =
``<split>/<utterance id>``; they load the **stored** values (the raw log spectrogram,
float32 ``[frames, bins]``) as Lhotse features usually are, and ``write_global_mvn``
writes the dataset's normalization statistics in the form ``lhotse.dataset.GlobalMVN``
loads, so ``GlobalMVN.from_file(...)`` normalizes them as ``ds2-data train`` does (for a
dataset in ``global`` mode, with the std floor applied).

    import ds2data.lhotse
    cuts = ds2data.lhotse.to_cutset("out/librispeech", "train-clean-100")
    cuts.to_file("cuts_train.jsonl.gz")
    ds2data.lhotse.write_global_mvn("out/librispeech", "global_mvn.pt")
"""

import numpy as np
import torch
from lhotse import CutSet, Features, MonoCut, SupervisionSegment
from lhotse.features.io import FeaturesReader, register_reader

from .dataset import Dataset
from .dataset import open as _open

__all__ = ["DS2DataReader", "to_cutset", "write_global_mvn", "FEATURE_TYPE", "STORAGE_TYPE"]

FEATURE_TYPE = "ds2-log-spectrogram"
STORAGE_TYPE = "ds2data_lmdb"
_opened = {}


def _dataset(path):
    dataset = _opened.get(path)
    if dataset is None:
        dataset = _opened[path] = _open(path, normalize=False)
    return dataset


@register_reader
class DS2DataReader(FeaturesReader):
    """Reads a cut's features from a ds2-data dataset (``storage_path``) by
    ``storage_key`` = ``<split>/<utterance id>``: the stored values, float32."""

    name = STORAGE_TYPE

    def __init__(self, storage_path, *args, **kwargs):
        super().__init__()
        self.dataset = _dataset(str(storage_path))

    def read(self, key, left_offset_frames=0, right_offset_frames=None):
        split, _, utterance = str(key).partition("/")
        features = self.dataset[split][utterance].features
        return features[left_offset_frames:right_offset_frames]


def to_cutset(dataset, split):
    """A CutSet of ``split``: one cut per record (in stored order) with its transcript
    (and speaker) as a supervision and its features in the shards."""
    if not isinstance(dataset, Dataset):
        dataset = _dataset(str(dataset))
    f = dataset.features
    rate = f["sampleRateHertz"]
    shift = f["hopSamples"] / rate
    part = dataset[split]
    cuts = []
    for index, utterance in enumerate(part.ids):
        frames = int(part.frames[index])
        duration = frames * shift
        record = part.record(index)
        text, speaker = record.transcript, record.speaker
        features = Features(
            type=FEATURE_TYPE, num_frames=frames, num_features=dataset.bins, frame_shift=shift, sampling_rate=rate,
            start=0.0, duration=duration, storage_type=STORAGE_TYPE, storage_path=dataset.path,
            storage_key=f"{split}/{utterance}", recording_id=utterance, channels=0)
        supervision = SupervisionSegment(
            id=utterance, recording_id=utterance, start=0.0, duration=duration, channel=0, text=text, speaker=speaker)
        cuts.append(MonoCut(id=utterance, start=0.0, duration=duration, channel=0, supervisions=[supervision], features=features))
    return CutSet.from_cuts(cuts)


def write_global_mvn(dataset, path):
    """Writes ``{"norm_means", "norm_stds"}`` (float32, the std floored as the manifest
    says) for ``lhotse.dataset.GlobalMVN.from_file``."""
    if not isinstance(dataset, Dataset):
        dataset = _dataset(str(dataset))
    stds = np.maximum(dataset.std, dataset.std_floor)
    torch.save(
        {"norm_means": torch.tensor(dataset.mean, dtype=torch.float32), "norm_stds": torch.tensor(stds, dtype=torch.float32)},
        path)
