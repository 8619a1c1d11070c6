"""The reader against what the Swift binary says (`ds2-data inspect --json --features`)."""

import json
import os
import shutil

import numpy as np
import pytest

import ds2data
from conftest import run


def inspected(path, split, raw=False):
    arguments = ["inspect", path, "--records", "100000", "--split", split, "--json", "--features"] + (["--raw"] if raw else [])
    lines = run(*arguments).stdout.splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.parametrize("name", ["float16-global", "float32-utterance", "float16-none", "uint8-global", "augmented"])
def test_records_equal_the_binarys(datasets, name):
    ds = ds2data.open(datasets[name])
    assert ds.format_version == 3
    for split in ds.splits:
        part = ds[split]
        expected = inspected(datasets[name], split)
        assert len(part) == len(expected) == sum(s["records"] for s in ds.manifest["splits"][ds.splits.index(split)]["shards"])
        assert list(part.frames) == sorted(part.frames), "stored order is ascending length"
        for index, reference in enumerate(expected):
            record = part[index]
            assert record.id == reference["id"]
            assert record.transcript == reference["transcript"]
            assert record.labels.tolist() == reference["labels"]
            features = np.asarray(reference["features"], dtype=np.float64)
            assert record.features.dtype == np.float32 and record.features.shape == features.shape
            np.testing.assert_allclose(record.features, features, rtol=1e-5, atol=1e-5, err_msg=f"{name} {split} {record.id}")
            assert part[record.id].id == record.id
        if name == "augmented" and split in ds.training_splits:
            assert any("augmentation" in part[i].info for i in range(len(part)))


def test_raw_values_and_statistics(datasets):
    ds = ds2data.open(datasets["float32-utterance"], normalize=False)
    split = ds.training_splits[0]
    expected = inspected(datasets["float32-utterance"], split, raw=True)
    for index in range(0, len(expected), 7):
        np.testing.assert_array_equal(ds[split][index].features, np.asarray(expected[index]["features"], dtype=np.float32))
    # docs/FORMAT.md §5.1: folding the shards' statistics gives the manifest's, exactly.
    m = ds.manifest
    count, mean, m2 = 0, np.zeros(ds.bins), np.zeros(ds.bins)
    for s in m["splits"]:
        if s["name"] in m["normalization"]["statisticsSplits"]:
            for shard in s["shards"]:
                st = shard["statistics"]
                if st["count"] == 0:
                    continue
                if count == 0:
                    count, mean, m2 = st["count"], np.array(st["mean"]), np.array(st["m2"])
                    continue
                na, nb = float(count), float(st["count"])
                n, d = na + nb, np.array(st["mean"]) - mean
                mean, m2 = mean + d * nb / n, m2 + (np.array(st["m2"]) + d * d * na * nb / n)
                count += st["count"]
    assert count == ds.statistics["count"]
    np.testing.assert_array_equal(mean, ds.statistics["mean"])
    np.testing.assert_array_equal(m2, ds.statistics["m2"])


def test_bad_input_is_named(datasets, tmp_path):
    with pytest.raises(ds2data.DatasetError, match="not a ds2-data dataset: no manifest.json"):
        ds2data.open(str(tmp_path))
    copy = str(tmp_path / "copy")
    shutil.copytree(datasets["float16-global"], copy)
    manifest = json.load(open(f"{copy}/manifest.json"))
    manifest["formatVersion"] = 9
    json.dump(manifest, open(f"{copy}/manifest.json", "w"))
    with pytest.raises(ds2data.DatasetError, match="format version 9; this reader knows 1, 2"):
        ds2data.open(copy)
    # Values readers apply must be what the statistics give; counts must fit the files.
    for change, message in [
        (lambda m: m["normalization"]["mean"].__setitem__(0, m["normalization"]["mean"][0] + 100), "differs from what"),
        (lambda m: m["splits"][0]["shards"][0].__setitem__("records", 10**12), "records cannot fit"),
    ]:
        altered = json.loads(json.dumps(manifest))
        altered["formatVersion"] = 3
        change(altered)
        json.dump(altered, open(f"{copy}/manifest.json", "w"))
        with pytest.raises(ds2data.DatasetError, match=message):
            ds2data.open(copy)
    manifest["formatVersion"] = 3
    json.dump(manifest, open(f"{copy}/manifest.json", "w"))
    ds = ds2data.open(copy)
    split = ds.splits[0]
    first = ds.manifest["splits"][0]["shards"][0]["file"]
    # A flipped byte in a feature value: the checksum names the shard and the record.
    record = ds[split][0]
    path = f"{copy}/{first}"
    data = bytearray(open(path, "rb").read())
    needle = record.id.encode() + record.transcript.encode()
    at = data.find(needle)
    assert at > 0
    labels = record.labels.astype("<u4").tobytes()
    features_at = data.find(labels, at) + len(labels)  # the labels are followed by the features
    assert features_at > at + len(needle)
    data[features_at + 64] ^= 0xFF
    open(path, "wb").write(data)
    fresh = ds2data.open(copy)
    for _ in range(2):  # a record that failed is checked again on the next read
        with pytest.raises(ds2data.DatasetError, match=f"{first}: record {record.id}: checksum mismatch"):
            fresh[split][0]
    # Checked on its first read only (as the ds2-data readers do): the split that read it
    # intact does not check it again.
    assert ds[split][0].id == record.id
    # A truncated shard: refused before it is mapped (no SIGBUS).
    open(path, "r+b").truncate(len(data) // 2)
    with pytest.raises(ds2data.DatasetError, match="bytes, the manifest says"):
        ds2data.open(copy)[split][0]
    os.remove(path)
    with pytest.raises(ds2data.DatasetError, match="shard missing"):
        ds2data.open(copy)[split][0]
    with pytest.raises(KeyError, match="no split"):
        ds2data.open(copy)["nope"]
    with pytest.raises(KeyError, match="no utterance 'nope'"):
        ds2data.open(datasets["float16-global"])[split]["nope"]


def test_uint8_is_close_to_float32(datasets):
    """8-bit shards (FORMAT.md §3.1): normalized RMS error against float32 ≤ 0.05, and a
    quarter of the size or less."""
    exact = ds2data.open(datasets["float32-global"], normalize=False)
    coded = ds2data.open(datasets["uint8-global"], normalize=False)
    squares, count = 0.0, 0
    for split in exact.splits:
        for index in range(len(exact[split])):
            difference = (coded[split][index].features - exact[split][index].features) / exact.std
            squares += float((difference * difference).sum())
            count += difference.size
    assert (squares / count) ** 0.5 <= 0.05
    size = lambda ds: sum(shard["bytes"] for s in ds.manifest["splits"] for shard in s["shards"])
    assert size(coded) <= size(exact) / 3.5


def minimal_reader():
    """The minimal reader printed in docs/FORMAT.md §9, as a namespace."""
    text = open(os.path.join(os.path.dirname(__file__), "../../docs/FORMAT.md"), encoding="utf-8").read()
    section = text[text.index("## 9. A minimal reader (Python)"):]
    code = section[section.index("```python") + len("```python"):]
    namespace = {}
    exec(code[:code.index("```")], namespace)  # noqa: S102 - the repository's own documentation
    return namespace


@pytest.mark.parametrize("name", ["float16-global", "float32-utterance", "float16-none", "uint8-global"])
def test_the_documented_minimal_reader_reads_what_ds2data_reads(datasets, name):
    """docs/FORMAT.md §9 is the format in a page: on every dtype and normalization mode it
    gives ds2data's ids, transcripts, labels and features (the groups of §2.3 included)."""
    reader = minimal_reader()
    ds = ds2data.open(datasets[name])
    for split in ds.splits:
        ds2data.close_all()  # py-lmdb opens a file once per process
        got = list(reader["records"](datasets[name], split))
        expected = list(ds[split])
        ds2data.close_all()
        assert [g[0] for g in got] == [r.id for r in expected]
        for (uid, text, labels, feats), record in zip(got, expected):
            assert text == record.transcript
            np.testing.assert_array_equal(labels.astype(np.int32), record.labels)
            np.testing.assert_allclose(feats, record.features, rtol=1e-6, atol=1e-6)


def _groups(path):
    """[(stored key, [(key, record bytes)])] of a format-3 shard."""
    import lmdb
    import struct
    out = []
    env = lmdb.open(path, subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        for stored, v in txn.cursor():
            n = struct.unpack_from("<I", v, 8)[0]
            lengths = [struct.unpack_from("<HI", v, 12 + 6 * i) for i in range(n)]
            k, r = 12 + 6 * n, 12 + 6 * n + sum(a for a, _ in lengths)
            records = []
            for key_length, record_length in lengths:
                r = (r + 7) & ~7
                records.append((bytes(v[k:k + key_length]), bytes(v[r:r + record_length])))
                k, r = k + key_length, r + record_length
            out.append((bytes(stored), records))
    env.close()
    return out


def _group_value(records):
    """A group (docs/FORMAT.md §2.3) of (key, record bytes), as the writer lays it out."""
    import struct
    import crc32c
    head = struct.pack("<I", len(records)) + b"".join(struct.pack("<HI", len(k), len(r)) for k, r in records)
    head += b"".join(k for k, _ in records)
    value = bytearray(b"DS2G" + struct.pack("<I", crc32c.crc32c(head)) + head)
    for _, record in records:
        value += bytes(-len(value) % 8) + record
    return bytes(value)


def _rewrite(dataset, file, entries):
    """Replaces a shard by (key, value) entries and updates its manifest size and digest."""
    import hashlib
    import lmdb
    path = f"{dataset}/{file}"
    os.remove(path)
    env = lmdb.open(path, subdir=False, map_size=1 << 28, lock=False)
    with env.begin(write=True) as txn:
        for key, value in entries:
            txn.put(key, value, append=True)
    env.close()
    manifest = json.load(open(f"{dataset}/manifest.json"))
    for split in manifest["splits"]:
        for shard in split["shards"]:
            if shard["file"] == file:
                shard["bytes"] = os.path.getsize(path)
                shard["sha256"] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    json.dump(manifest, open(f"{dataset}/manifest.json", "w"))


def _version_two(record):
    """A version-3 record as record version 2 stored it (8-bit parameters in float32)."""
    import struct
    import crc32c
    v = bytearray(record)
    dtype, frames, bins, labels, id_length, text_length, info_length = v[6], *struct.unpack_from("<6I", v, 8)
    v[4] = 2
    if dtype == 3:
        start = ((40 + id_length + text_length + info_length + 3) & ~3) + 4 * labels
        halves = np.frombuffer(bytes(v[start:start + 4 * bins]), "<f2").astype("<f4").tobytes()
        v[start:start + 4 * bins] = halves
    struct.pack_into("<I", v, 36, crc32c.crc32c(bytes(v[40:]), crc32c.crc32c(bytes(v[:36]))))
    return bytes(v)


@pytest.mark.parametrize("name", ["uint8-global", "float16-global"])
def test_format_two_datasets_are_still_read(datasets, name, tmp_path):
    """A dataset as format 2 stored it (one record per LMDB value, 8-bit parameters in
    float32) reads as the same records; a group in it, or a lone record in format 3, is
    refused, naming the shard."""
    copy = str(tmp_path / "v2")
    shutil.copytree(datasets[name], copy)
    expected = {split: [(r.id, r.features) for r in ds2data.open(datasets[name])[split]] for split in ds2data.open(copy).splits}
    ds2data.close_all()
    manifest = json.load(open(f"{copy}/manifest.json"))
    for split in manifest["splits"]:
        for shard in split["shards"]:
            records = [record for _, group in _groups(f"{copy}/{shard['file']}") for record in group]
            _rewrite(copy, shard["file"], [(key, _version_two(record)) for key, record in records])
    manifest = json.load(open(f"{copy}/manifest.json"))
    manifest["formatVersion"] = 2
    json.dump(manifest, open(f"{copy}/manifest.json", "w"))
    ds = ds2data.open(copy)
    for split, records in expected.items():
        got = list(ds[split])
        assert [r.id for r in got] == [uid for uid, _ in records]
        for record, (_, features) in zip(got, records):
            np.testing.assert_array_equal(record.features, features)
        assert ds[split][records[-1][0]].id == records[-1][0]
    ds2data.close_all()
    manifest["formatVersion"] = 3
    json.dump(manifest, open(f"{copy}/manifest.json", "w"))
    with pytest.raises(ds2data.DatasetError, match="is not a record group"):
        len(ds2data.open(copy)[ds.splits[0]].frames)
    ds2data.close_all()


def test_damage_behind_the_group_checksum_is_named(datasets, tmp_path):
    """With the groups' checksums recomputed: a record moved to another group (keys no longer
    ascend across groups) and a record claiming an older version (which would skip its
    checksum) are refused, naming the shard."""
    source = datasets["uint8-global"]
    shard = json.load(open(f"{source}/manifest.json"))["splits"][0]["shards"][0]["file"]
    groups = _groups(f"{source}/{shard}")
    assert len(groups) >= 2, "the fixture's first shard holds several groups"
    for case in ["moved", "version"]:
        copy = str(tmp_path / case)
        shutil.copytree(source, copy)
        changed = [list(records) for _, records in groups]
        if case == "moved":
            changed[0].append(changed[1].pop(1))  # group 0 now ends above group 1's first key
        else:
            key, record = changed[0][0]
            changed[0][0] = (key, record[:4] + b"\x01" + record[5:])
        entries = [(records[0][0], _group_value(records)) for records in changed if records]
        _rewrite(copy, shard, entries)
        ds2data.close_all()
        split = ds2data.open(copy).splits[0]
        message = "keys out of order" if case == "moved" else "is not a version-3 record"
        with pytest.raises(ds2data.DatasetError, match=f"{shard}.*{message}"):
            list(ds2data.open(copy)[split])
        ds2data.close_all()
        result = run("verify", copy, check=False)
        assert result.returncode == 1 and shard in result.stdout + result.stderr, case
