"""Kaldi / ESPnet data directories from a ds2-data split (kaldiio writes the archive).

``export(dataset, split, folder)`` writes ``feats.ark`` + ``feats.scp`` (float32 matrices,
frames × bins, normalized as the manifest says unless ``normalize=False``), ``text``,
``utt2spk``, ``spk2utt`` and ``utt2num_frames``, utterances in C-locale id order as Kaldi's
``utils/validate_data_dir.sh`` wants. From the shell:
``python -m ds2data.kaldi DATASET SPLIT FOLDER [--raw]``.
"""

import argparse
import os
import sys

from .dataset import Dataset
from .dataset import open as _open


def export(dataset, split, folder, normalize=True):
    """Writes the Kaldi data directory ``folder`` (created; must not hold a feats.ark);
    returns the number of utterances."""
    import kaldiio

    if not isinstance(dataset, Dataset):
        dataset = _open(dataset, normalize=normalize)
    part = dataset[split]
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(os.path.join(folder, "feats.ark")):
        raise FileExistsError(f"{folder}/feats.ark exists; export into a new folder")
    ids = part.ids
    order = sorted(range(len(ids)), key=lambda i: ids[i].encode("utf-8"))
    speakers = {}
    with kaldiio.WriteHelper(f"ark,scp:{folder}/feats.ark,{folder}/feats.scp") as writer, \
            open(f"{folder}/text", "w", encoding="utf-8") as text, \
            open(f"{folder}/utt2spk", "w", encoding="utf-8") as utt2spk, \
            open(f"{folder}/utt2num_frames", "w", encoding="utf-8") as frames:
        for index in order:
            record = part.record(index)
            writer(record.id, record.features)
            text.write(f"{record.id} {record.transcript}\n")
            speaker = record.speaker or record.id
            utt2spk.write(f"{record.id} {speaker}\n")
            speakers.setdefault(speaker, []).append(record.id)
            frames.write(f"{record.id} {record.frames}\n")
    with open(f"{folder}/spk2utt", "w", encoding="utf-8") as spk2utt:
        for speaker in sorted(speakers, key=lambda s: s.encode("utf-8")):
            spk2utt.write(f"{speaker} {' '.join(speakers[speaker])}\n")
    return len(order)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ds2data.kaldi", description="Export a ds2-data split as a Kaldi data directory.")
    parser.add_argument("dataset")
    parser.add_argument("split")
    parser.add_argument("folder")
    parser.add_argument("--raw", action="store_true", help="the stored values, not normalized")
    args = parser.parse_args(argv)
    count = export(args.dataset, args.split, args.folder, normalize=not args.raw)
    print(f"wrote {count} utterances to {args.folder} (feats.scp, text, utt2spk, spk2utt, utt2num_frames)")


if __name__ == "__main__":
    sys.exit(main())
