"""Kaldi export, read back with kaldiio."""

import numpy as np

import ds2data
import ds2data.kaldi

import kaldiio


def test_kaldi_directory_reads_back(datasets, tmp_path):
    ds = ds2data.open(datasets["float16-global"])
    split = ds.splits[1]
    folder = str(tmp_path / "kaldi")
    count = ds2data.kaldi.export(ds, split, folder)
    assert count == len(ds[split])
    feats = kaldiio.load_scp(f"{folder}/feats.scp")
    ids = [line.split()[0] for line in open(f"{folder}/feats.scp")]
    assert ids == sorted(ids, key=lambda s: s.encode()), "C-locale order"
    text = dict(line.rstrip("\n").split(" ", 1) for line in open(f"{folder}/text", encoding="utf-8"))
    frames = dict(line.split() for line in open(f"{folder}/utt2num_frames"))
    for record in ds[split]:
        np.testing.assert_array_equal(feats[record.id], record.features)
        assert text[record.id] == record.transcript
        assert int(frames[record.id]) == record.frames
    speakers = dict(line.split() for line in open(f"{folder}/utt2spk"))
    assert set(speakers) == set(ids)
