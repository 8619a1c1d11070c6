"""The dataset reader: manifest, splits in stored order, records (docs/FORMAT.md)."""

import builtins
import json
import math
import os
import stat
import struct
from collections.abc import Sequence

import crc32c as _crc32c
import lmdb
import numpy as np

from . import _lmdbcheck

FORMAT = "ds2-data.shards"
#: Manifest format versions this reader knows (docs/FORMAT.md §8).
FORMAT_VERSIONS = (1, 2, 3)
_MAX_MANIFEST_BYTES = 1 << 30
_MAX_BINS = 32769
_HEADER = 40
_DTYPES = {1: "float16", 2: "float32", 3: "uint8"}


class DatasetError(Exception):
    """A dataset that cannot be read as it is: names the file (and record) and the reason."""


def open(path, normalize=True, verify_checksums=True):  # noqa: A001 - the package's entry point
    """Opens the dataset in folder ``path`` (its ``manifest.json`` is read and checked; no
    shard is mapped until a record is read).

    ``normalize``: records' features as the manifest's normalization says (float32), or
    the stored values (float32) when False. ``verify_checksums``: check each record's
    CRC-32C (format version 2) on its first read through this object in this process, as
    the ds2-data readers do (a DataLoader worker keeps its own account).
    Raises ``DatasetError`` for a folder that is not a dataset, an unknown format version
    or a damaged manifest.
    """
    return Dataset(path, normalize=normalize, verify_checksums=verify_checksums)


class Dataset:
    """A ds2-data dataset: its manifest's fields and its splits (``ds[name]``)."""

    def __init__(self, path, normalize=True, verify_checksums=True):
        self.path = os.path.abspath(os.fspath(path))
        self.normalize = normalize
        self.verify_checksums = verify_checksums
        self.manifest = _read_manifest(self.path)
        m = self.manifest
        features = m["features"]
        self.bins = features["bins"]
        self.dtype = features["dtype"]
        self.vocabulary = list(m["vocabulary"]["symbols"])
        norm = m["normalization"]
        self.normalization_mode = norm["mode"]
        self.mean = np.asarray(norm["mean"], dtype=np.float64)
        self.std = np.asarray(norm["std"], dtype=np.float64)
        self.std_floor = float(norm["stdFloor"])
        self._scale = (1.0 / np.maximum(self.std, self.std_floor)).astype(np.float32) if self.bins else None
        self._mean32 = self.mean.astype(np.float32)
        self._split_info = {s["name"]: s for s in m["splits"]}
        self._splits = {}

    # -- manifest fields ------------------------------------------------------------------
    @property
    def format_version(self):
        return self.manifest["formatVersion"]

    @property
    def features(self):
        """The feature parameters (``sampleRateHertz``, ``hopSamples``, ``bins``, …)."""
        return self.manifest["features"]

    @property
    def splits(self):
        """Split names, in the manifest's order."""
        return [s["name"] for s in self.manifest["splits"]]

    @property
    def training_splits(self):
        return [s["name"] for s in self.manifest["splits"] if s["isTraining"]]

    @property
    def statistics(self):
        """``normalization.statistics``: ``{count, mean, m2}`` (mean and m2 as float64 arrays)."""
        st = self.manifest["normalization"]["statistics"]
        return {"count": st["count"], "mean": np.asarray(st["mean"], float), "m2": np.asarray(st["m2"], float)}

    def __getitem__(self, name):
        if name not in self._split_info:
            raise KeyError(f"{self.path}: no split {name!r} (splits: {', '.join(self.splits)})")
        if name not in self._splits:
            self._splits[name] = Split(self, self._split_info[name])
        return self._splits[name]

    def __contains__(self, name):
        return name in self._split_info

    def __iter__(self):
        return iter(self.splits)

    def __repr__(self):
        return f"ds2data.Dataset({self.path!r}: " + ", ".join(f"{s['name']} {s['records']}" for s in self.manifest["splits"]) + ")"

    # LMDB environments live in the process-wide ``_environments`` (opened lazily in each
    # process, never pickled), so a Dataset pickles and forks as plain data.

    def _environment(self, shard):
        """The read-only LMDB environment of ``shard`` (a manifest entry), opened once per
        process after checking the file: a regular file inside the dataset, of exactly the
        manifest's size, with a sound LMDB structure."""
        file = shard["file"]
        path = _shard_path(self.path, file)
        try:
            info = os.lstat(path)
        except OSError as error:
            raise DatasetError(f"{path}: shard missing or unreadable ({error.strerror})") from None
        if not stat.S_ISREG(info.st_mode):
            raise DatasetError(f"{path}: shard is not a regular file")
        if info.st_size != shard["bytes"]:
            raise DatasetError(f"{path}: shard has {info.st_size} bytes, the manifest says {shard['bytes']} (damaged or replaced)")
        return _environments.get(path, info)


class _Environments:
    """The process's LMDB environments, by shard path. LMDB allows one environment per
    file and process, and none inherited across fork: a forked process starts afresh, and
    a file replaced or rewritten since it was opened is checked and opened again."""

    def __init__(self):
        self._pid = os.getpid()
        self._open = {}

    def get(self, path, info):
        if self._pid != os.getpid():
            self._open = {}  # the parent's: neither closed nor used here
            self._pid = os.getpid()
        stamp = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        entry = self._open.get(path)
        if entry is not None:
            if entry[1] == stamp:
                return entry[0]
            entry[0].close()
            del self._open[path]
        try:
            _lmdbcheck.validate(path, info.st_size)
        except (ValueError, OSError) as error:
            raise DatasetError(f"{path}: damaged shard: {error}") from None
        try:
            env = lmdb.open(path, subdir=False, readonly=True, lock=False, readahead=False, max_dbs=0)
        except lmdb.Error as error:
            raise DatasetError(f"{path}: cannot open the shard: {error}") from None
        self._open[path] = (env, stamp)
        return env

    def close(self):
        if self._pid == os.getpid():
            for env, _ in self._open.values():
                env.close()
        self._open = {}
        self._pid = os.getpid()


_environments = _Environments()


def close_all():
    """Closes every LMDB environment this process opened (they reopen when needed)."""
    _environments.close()


class Record:
    """One utterance: ``id``, ``transcript``, ``labels`` (int32), ``features`` (float32
    ``[frames, bins]``), ``frames``, ``samples`` and ``info`` (the record's JSON info)."""

    __slots__ = ("id", "transcript", "labels", "features", "frames", "samples", "info")

    def __init__(self, id, transcript, labels, features, frames, samples, info):  # noqa: A002
        self.id = id
        self.transcript = transcript
        self.labels = labels
        self.features = features
        self.frames = frames
        self.samples = samples
        self.info = info

    @property
    def speaker(self):
        return self.info.get("speaker")

    def __repr__(self):
        return f"Record({self.id!r}, {self.frames} frames, {self.transcript!r})"


class Split(Sequence):
    """A split's records in stored order (ascending frames, then id), indexable by
    position and by id. The index (frames, shard, key of every record) is read from the
    shards' keys on first use and kept in numpy arrays, so DataLoader workers share it."""

    def __init__(self, dataset, info):
        self.dataset = dataset
        self.name = info["name"]
        self.info = info
        self._shards = info["shards"]
        self._length = sum(s["records"] for s in self._shards)
        self._frames = None
        self._shard_of = None
        self._key_offsets = None
        self._keys = None
        self._entry_keys = None
        self._entry_of = None
        self._spans = None
        self._positions = None
        self._checked = None

    def __len__(self):
        return self._length

    @property
    def frames(self):
        """Frames of every record, in stored order (int32 array)."""
        self._build_index()
        return self._frames

    @property
    def ids(self):
        self._build_index()
        return [self._key(i)[4:].decode("utf-8") for i in range(self._length)]

    def position(self, utterance_id):
        """The stored position of ``utterance_id``; ``KeyError`` naming the split when absent."""
        self._build_index()
        if self._positions is None:
            self._positions = {self._key(i)[4:].decode("utf-8"): i for i in range(self._length)}
        try:
            return self._positions[utterance_id]
        except KeyError:
            raise KeyError(f"{self.dataset.path}: no utterance {utterance_id!r} in split {self.name}") from None

    def __getitem__(self, item):
        if isinstance(item, str):
            return self.record(self.position(item))
        if isinstance(item, slice):
            return [self.record(i) for i in range(*item.indices(self._length))]
        index = int(item)
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"record {item} of split {self.name} ({self._length} records)")
        return self.record(index)

    def record(self, index):
        self._build_index()
        shard = self._shards[self._shard_of[index]]
        key = self._key(index)
        env = self.dataset._environment(shard)
        try:
            with env.begin(buffers=True) as txn:
                value = self._stored_bytes(txn, index)
                if value is None:
                    raise DatasetError(
                        f"{self.dataset.path}/{shard['file']}: record {key[4:].decode('utf-8', 'replace')} "
                        "vanished (the shard changed since it was indexed)")
                verify = self.dataset.verify_checksums and not self._checked[index]
                record = _decode(self.dataset, shard["file"], key, value, verify)
                self._checked[index] = True
                return record
        except lmdb.Error as error:
            raise DatasetError(f"{self.dataset.path}/{shard['file']}: record {key[4:].decode('utf-8', 'replace')}: {error}") from None

    def _stored_bytes(self, txn, index):
        """The record's bytes: a slice of the LMDB value it is stored in (a group's, whose
        directory the index walk checked), or None when that value is gone or too short."""
        value = txn.get(self._entry_keys[self._entry_of[index]])
        start, length = self._spans[index]
        if value is None or len(value) < start + length:
            return None
        return memoryview(value)[start:start + length]

    def _key(self, index):
        start, end = self._key_offsets[index], self._key_offsets[index + 1]
        return self._keys[start:end].tobytes()

    def _build_index(self):
        if self._frames is not None:
            return
        frames = np.empty(self._length, dtype=np.int32)
        shard_of = np.empty(self._length, dtype=np.int32)
        keys = bytearray()
        offsets = np.empty(self._length + 1, dtype=np.int64)
        entry_keys, entry_of = [], np.empty(self._length, dtype=np.int64)
        spans = np.empty((self._length, 2), dtype=np.int64)
        position = 0
        grouped = self.dataset.format_version >= 3
        for number, shard in enumerate(self._shards):
            env = self.dataset._environment(shard)
            count = 0
            previous = None
            try:
                with env.begin(buffers=True) as txn:
                    for stored_key, value in txn.cursor().iternext(keys=True, values=True):
                        stored_key = bytes(stored_key)
                        entry_keys.append(stored_key)
                        for key, start, length in _records_of(self.dataset, shard["file"], stored_key, value, grouped):
                            if position >= self._length or len(key) < 5:
                                raise DatasetError(
                                    f"{self.dataset.path}/{shard['file']}: more records or a shorter key than the manifest says")
                            if previous is not None and not previous < key:
                                raise DatasetError(
                                    f"{self.dataset.path}/{shard['file']}: keys out of order at record "
                                    f"{key[4:].decode('utf-8', 'replace')!r}")
                            previous = key
                            frames[position] = struct.unpack_from(">I", key, 0)[0]
                            shard_of[position] = number
                            offsets[position] = len(keys)
                            entry_of[position] = len(entry_keys) - 1
                            spans[position] = start, length
                            keys += key
                            position += 1
                            count += 1
            except lmdb.Error as error:
                raise DatasetError(f"{self.dataset.path}/{shard['file']}: {error}") from None
            if count != shard["records"]:
                raise DatasetError(
                    f"{self.dataset.path}/{shard['file']}: {count} records, the manifest says {shard['records']}")
        offsets[self._length] = len(keys)
        self._keys = np.frombuffer(bytes(keys), dtype=np.uint8)
        self._key_offsets = offsets
        self._entry_keys = entry_keys
        self._entry_of = entry_of
        self._spans = spans
        self._shard_of = shard_of
        self._checked = np.zeros(self._length, dtype=bool)
        self._frames = frames

    def __repr__(self):
        return f"ds2data.Split({self.name!r}, {self._length} records)"


_GROUP = b"DS2G"
#: The record layout version of every record in a group (groups came with it).
_GROUPED_RECORD_VERSION = 3


def _records_of(dataset, file, stored_key, value, grouped):
    """(key, start, length) of each record an LMDB entry holds: the records of a group
    (docs/FORMAT.md §2.3, checked whole) when ``grouped`` (format 3), else the entry itself
    (formats 1 and 2)."""
    v = memoryview(value)
    n = len(v)
    name = stored_key[4:].decode("utf-8", "replace")
    if (bytes(v[:4]) == _GROUP) != grouped:
        raise DatasetError(
            f"{dataset.path}/{file}: "
            + (f"the value under {name!r} is not a record group (format 3 stores records only in groups)" if grouped
               else f"a record group under {name!r} in a dataset of format 1 or 2"))
    if not grouped:
        return [(stored_key, 0, n)]

    def damaged(reason):
        return DatasetError(f"{dataset.path}/{file}: damaged record group {name!r}: {reason}")

    if n < 12:
        raise damaged(f"{n} bytes, no group header")
    stored_crc, count = struct.unpack_from("<II", v, 4)
    if count < 1 or count > (n - 12) // 6:
        raise damaged(f"it claims {count} records in {n} bytes")
    directory = [struct.unpack_from("<HI", v, 12 + 6 * i) for i in range(count)]
    keys_start = 12 + 6 * count
    keys_end = keys_start + sum(k for k, _ in directory)
    if keys_end > n:
        raise damaged(f"its keys run past its {n} bytes")
    if _crc32c.crc32c(v[8:keys_end]) != stored_crc:
        raise damaged("directory checksum mismatch")
    entries = []
    key_at, record_at = keys_start, keys_end
    previous = None
    for index, (key_length, record_length) in enumerate(directory):
        if not 1 <= key_length <= 511:
            raise damaged(f"record {index} has a key of {key_length} bytes")
        padded = (record_at + 7) & ~7  # records start at multiples of 8
        if padded > n or any(v[record_at:padded]):
            raise damaged(f"non-zero padding before record {index}")
        record_at = padded
        if record_length > n - record_at:
            raise damaged(f"record {index} runs past the group's {n} bytes")
        if record_length < 6 or struct.unpack_from("<H", v, record_at + 4)[0] != _GROUPED_RECORD_VERSION:
            raise damaged(f"record {index} is not a version-{_GROUPED_RECORD_VERSION} record")
        key = bytes(v[key_at:key_at + key_length])
        if previous is None and key != stored_key:
            raise damaged("its first key is not the key it is stored under")
        if previous is not None and not previous < key:
            raise damaged(f"keys out of order at record {index}")
        entries.append((key, record_at, record_length))
        previous = key
        key_at += key_length
        record_at += record_length
    if record_at != n:
        raise damaged(f"its records end at byte {record_at} of {n}")
    return entries


def _decode(dataset, file, key, value, verify_checksum):
    """A record from its LMDB key and value (a buffer valid while the transaction lives);
    ``verify_checksum``: check its CRC-32C."""
    uid = bytes(key[4:]).decode("utf-8", "replace")

    def damaged(reason):
        return DatasetError(f"{dataset.path}/{file}: record {uid}: {reason}")

    v = memoryview(value)
    n = len(v)
    if n < _HEADER or bytes(v[:4]) != b"DS2R":
        raise damaged("not a ds2-data record (bad magic or too short)")
    (version,) = struct.unpack_from("<H", v, 4)
    if version not in (1, 2, 3):
        raise damaged(f"record layout version {version}, this reader knows 1 to 3")
    dtype = v[6]
    if _DTYPES.get(dtype) != dataset.dtype:
        raise damaged(f"dtype {dtype}, the manifest says {dataset.dtype}")
    frames, bins, label_count, id_length, text_length, info_length, samples, checksum = struct.unpack_from("<8I", v, 8)
    if bins != dataset.bins:
        raise damaged(f"{bins} bins, the manifest says {dataset.bins}")
    if frames < 1 or frames != struct.unpack_from(">I", key, 0)[0]:
        raise damaged(f"{frames} frames, the key says {struct.unpack_from('>I', key, 0)[0]}")
    # 8-bit parameters: float16 from record version 3, float32 before (docs/FORMAT.md §3.1).
    parameter_width = 2 if version >= 3 else 4
    block = 2 * parameter_width * bins + frames * bins if dtype == 3 else frames * bins * (2 if dtype == 1 else 4)
    text_end = _HEADER + id_length + text_length + info_length
    padded = (text_end + 3) & ~3
    if padded + 4 * label_count + block != n:
        raise damaged(f"{n} bytes, the header describes {padded + 4 * label_count + block}")
    if version >= 2 and verify_checksum:
        if _crc32c.crc32c(v[_HEADER:], _crc32c.crc32c(v[:36])) != checksum:
            raise damaged("checksum mismatch (the record's bytes changed after it was written)")
    try:
        record_id = bytes(v[_HEADER:_HEADER + id_length]).decode("utf-8")
        transcript = bytes(v[_HEADER + id_length:_HEADER + id_length + text_length]).decode("utf-8")
        info = json.loads(bytes(v[_HEADER + id_length + text_length:text_end])) if info_length else {}
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise damaged(f"unreadable text: {error}") from None
    if record_id != uid:
        raise damaged(f"holds id {record_id!r}")
    labels = np.frombuffer(v, dtype="<u4", count=label_count, offset=padded).astype(np.int32)
    if label_count and (labels.min() < 1 or labels.max() >= len(dataset.vocabulary)):
        raise damaged(f"label ids outside 1…{len(dataset.vocabulary) - 1}")
    start = padded + 4 * label_count
    if dtype == 3:  # docs/FORMAT.md §3.1: value = minimum[k] + code · step[k], in float32
        parameter = "<f2" if version >= 3 else "<f4"
        minimum = np.frombuffer(v, dtype=parameter, count=bins, offset=start)
        step = np.frombuffer(v, dtype=parameter, count=bins, offset=start + parameter_width * bins)
        codes = np.frombuffer(v, dtype=np.uint8, count=frames * bins, offset=start + 2 * parameter_width * bins).reshape(frames, bins)
        features = minimum.astype(np.float32) + codes.astype(np.float32) * step.astype(np.float32)
    else:
        stored = np.frombuffer(v, dtype="<f2" if dtype == 1 else "<f4", count=frames * bins, offset=start)
        features = stored.astype(np.float32).reshape(frames, bins)
    if dataset.normalize:
        features = _normalize(dataset, features)
    return Record(record_id, transcript, labels, features, frames, samples, info if isinstance(info, dict) else {})


def _normalize(dataset, x):
    mode = dataset.normalization_mode
    if mode == "global":
        return (x - dataset._mean32) * dataset._scale
    if mode == "utterance":
        mean, m2 = record_statistics(x)
        scale = (1.0 / np.maximum(np.sqrt(m2 / len(x)), dataset.std_floor)).astype(np.float32)
        return (x - mean.astype(np.float32)) * scale
    return x


def record_statistics(x):
    """A record's per-bin (mean, m2) as docs/FORMAT.md §5.1 computes them (float64, frame
    by frame in order)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 1:
        return x[0].copy(), np.zeros(x.shape[1])
    d = x[1:] - x[0]
    s = np.cumsum(d, axis=0)[-1]
    q = np.cumsum(d * d, axis=0)[-1]
    n = float(len(x))
    return x[0] + s / n, np.maximum(0.0, q - (s * s) / n)


def _shard_path(dataset, file):
    """docs/FORMAT.md §1: a plain relative path inside the dataset."""
    if not isinstance(file, str) or file.startswith("/") or "\0" in file or {"", ".", ".."} & set(file.split("/")):
        raise DatasetError(f"{dataset}: shard path {file!r} is not a plain relative path inside the dataset")
    return os.path.join(dataset, file)


def _read_manifest(path):
    manifest_path = os.path.join(path, "manifest.json")
    if not os.path.isdir(path):
        raise DatasetError(f"{path}: not a folder")
    try:
        info = os.stat(manifest_path)
    except OSError:
        hint = " (an unfinished run: progress.json is there)" if os.path.exists(os.path.join(path, "progress.json")) else ""
        raise DatasetError(f"{path}: not a ds2-data dataset: no manifest.json{hint}") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_MANIFEST_BYTES:
        raise DatasetError(f"{manifest_path}: not a regular file of at most 1 GiB")
    try:
        with builtins.open(manifest_path, "rb") as f:
            m = json.loads(f.read())
    except (OSError, ValueError, RecursionError) as error:
        raise DatasetError(f"{manifest_path}: unreadable manifest: {error}") from None

    def bad(reason):
        return DatasetError(f"{manifest_path}: {reason}")

    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise bad(f"not a ds2-data manifest (format {m.get('format') if isinstance(m, dict) else None!r})")
    version = m.get("formatVersion")
    if version not in FORMAT_VERSIONS:
        raise bad(f"format version {version!r}; this reader knows {', '.join(map(str, FORMAT_VERSIONS))} (upgrade ds2data)")
    try:
        bins = m["features"]["bins"]
        if not isinstance(bins, int) or not 1 <= bins <= _MAX_BINS:
            raise bad(f"features.bins {bins!r} is not 1…{_MAX_BINS}")
        if m["features"]["dtype"] not in ("float16", "float32", "uint8"):
            raise bad(f"features.dtype {m['features']['dtype']!r}")
        symbols = m["vocabulary"]["symbols"]
        if not isinstance(symbols, list) or len(symbols) < 2:
            raise bad("vocabulary.symbols is not a list of at least two symbols")
        norm = m["normalization"]
        if norm["mode"] not in ("global", "utterance", "none"):
            raise bad(f"normalization.mode {norm['mode']!r}")
        for field in ("mean", "std"):
            values = norm[field]
            if not isinstance(values, list) or len(values) != bins or not all(
                    isinstance(x, (int, float)) and math.isfinite(x) for x in values):
                raise bad(f"normalization.{field} is not {bins} finite numbers")
        if min(norm["std"]) < 0 or not (isinstance(norm["stdFloor"], (int, float)) and norm["stdFloor"] >= 0):
            raise bad("negative std or stdFloor")
        # FORMAT.md §5/§6: mean and std are what the statistics give, exactly (as the
        # ds2-data readers check).
        st = norm["statistics"]
        count, st_mean, st_m2 = st["count"], st["mean"], st["m2"]
        if not (isinstance(count, int) and count >= 0 and isinstance(st_mean, list) and isinstance(st_m2, list)
                and len(st_mean) == bins and len(st_m2) == bins
                and all(isinstance(x, (int, float)) and math.isfinite(x) for x in st_mean + st_m2)
                and min(st_m2) >= 0):
            raise bad("normalization.statistics is not {count ≥ 0, mean, m2 ≥ 0} of features.bins finite numbers")
        variance = [0.0] * bins if count == 0 else [float(x) / float(count) for x in st_m2]
        if [float(x) for x in norm["mean"]] != [float(x) for x in st_mean] or \
                [float(x) for x in norm["std"]] != [math.sqrt(v) for v in variance]:
            raise bad("normalization.mean or .std differs from what normalization.statistics gives (altered?)")
        if norm["mode"] == "global" and any(max(x, norm["stdFloor"]) <= 0 for x in norm["std"]):
            raise bad("a bin's std and normalization.stdFloor are both 0: readers would divide by 0")
        names = set()
        files = set()
        for split in m["splits"]:
            if split["name"] in names:
                raise bad(f"split {split['name']!r} listed twice")
            names.add(split["name"])
            for shard in split["shards"]:
                _shard_path(path, shard["file"])
                if shard["file"] in files:
                    raise bad(f"shard {shard['file']} listed twice")
                files.add(shard["file"])
                if not (isinstance(shard["records"], int) and shard["records"] >= 0
                        and isinstance(shard["bytes"], int) and shard["bytes"] >= 0):
                    raise bad(f"shard {shard['file']}: bad records or bytes")
                if shard["records"] > shard["bytes"] // 48:  # a record takes more than 48 bytes of the file
                    raise bad(f"shard {shard['file']}: {shard['records']} records cannot fit in its {shard['bytes']} bytes")
    except (KeyError, TypeError) as error:
        raise bad(f"missing or mistyped field {error}") from None
    return m

