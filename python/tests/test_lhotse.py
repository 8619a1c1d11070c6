"""Lhotse reads the shards through the registered reader; GlobalMVN normalizes as the trainer."""

import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset import GlobalMVN

import ds2data
import ds2data.lhotse


def test_cuts_load_the_stored_features_and_global_mvn_normalizes(datasets, tmp_path):
    path = datasets["float16-global"]
    split = "dev-clean"
    cuts = ds2data.lhotse.to_cutset(path, split)
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    loaded = CutSet.from_file(tmp_path / "cuts.jsonl.gz")
    raw = ds2data.open(path, normalize=False)[split]
    normalized = ds2data.open(path)[split]
    assert len(loaded) == len(raw)
    ds2data.lhotse.write_global_mvn(path, tmp_path / "mvn.pt")
    mvn = GlobalMVN.from_file(tmp_path / "mvn.pt")
    for cut in loaded:
        features = cut.load_features()
        np.testing.assert_array_equal(features, raw[cut.id].features)
        assert cut.num_frames == raw[cut.id].frames and cut.supervisions[0].text == raw[cut.id].transcript
        np.testing.assert_allclose(
            mvn(torch.from_numpy(features)).numpy(), normalized[cut.id].features, rtol=1e-5, atol=1e-5)
    # A sub-span loads the matching frames.
    cut = next(iter(loaded))
    part = cut.truncate(offset=0.05, duration=0.1)
    np.testing.assert_array_equal(part.load_features(), raw[cut.id].features[5:15])
