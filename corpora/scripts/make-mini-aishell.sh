#!/usr/bin/env bash
# make-mini-aishell.sh - synthesize corpora/mini-aishell: a few Mandarin utterances in
# the layout OpenSLR ships AISHELL-1 in (data_aishell.tgz unpacked once), with
# espeak-ng's Mandarin pinyin voice.
#
#   <out>/data_aishell/wav/S0002.tar.gz …        one archive per speaker, holding
#                                                <split>/<speaker>/BAC009<speaker>W<NNNN>.wav
#   <out>/data_aishell/transcript/aishell_transcript_v0.8.txt
#
# espeak-ng's cmn voice has an incomplete character dictionary, so each sentence is
# written twice below: in characters (the transcript, words separated by spaces as in
# AISHELL) and in tone-numbered pinyin (what cmn-latn-pinyin reads). Speakers are
# espeak-ng voice variants with their own rate and pitch. Splits use AISHELL's speaker
# ranges (train S0002–S0723, dev S0724–S0763, test S0764–S0916).
#
# On purpose: two WAVs have no transcript line (the real corpus has a few hundred), and
# one dev sentence uses characters that no training sentence has (喝 茶 吗), so the
# vocabulary rule shows.
#
# Requires: bash, python3 (stdlib only), espeak-ng, sox, GNU tar, gzip. Deterministic:
# the same tool versions give byte-identical files (tar --sort=name --mtime=@0, gzip -n).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$here/../mini-aishell}"
for tool in python3 espeak-ng sox tar gzip; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 2; }
done
rm -rf -- "$OUT"
mkdir -p "$OUT/data_aishell/wav" "$OUT/data_aishell/transcript"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mkaishell.XXXXXX")"
trap 'rm -rf -- "$WORK"' EXIT

python3 - "$OUT" "$WORK" <<'PY'
import os, subprocess, sys

out, work = sys.argv[1:3]

# speaker -> (split, espeak-ng voice, rate, pitch)
SPEAKERS = {
    "S0002": ("train", "cmn-latn-pinyin+f2", 175, 60),
    "S0003": ("train", "cmn-latn-pinyin+m3", 185, 40),
    "S0004": ("train", "cmn-latn-pinyin+f4", 170, 70),
    "S0724": ("dev", "cmn-latn-pinyin+m1", 180, 50),
    "S0764": ("test", "cmn-latn-pinyin+f1", 175, 65),
}

# (speaker, transcript words or None for "no transcript line", pinyin)
UTTERANCES = [
    ("S0002", "今天 天气 很 好", "jin1 tian1 tian1 qi4 hen3 hao3"),
    ("S0002", "我们 一起 去 学校", "wo3 men5 yi4 qi3 qu4 xue2 xiao4"),
    ("S0002", "他 喜欢 看 书", "ta1 xi3 huan1 kan4 shu1"),
    ("S0002", "明天 我 去 北京", "ming2 tian1 wo3 qu4 bei3 jing1"),
    ("S0003", "这 是 一 个 好 学校", "zhe4 shi4 yi2 ge4 hao3 xue2 xiao4"),
    ("S0003", "你们 今天 去 哪里", "ni3 men5 jin1 tian1 qu4 na3 li3"),
    ("S0003", "我 很 喜欢 北京", "wo3 hen3 xi3 huan1 bei3 jing1"),
    ("S0003", "他们 明天 看 电影", "ta1 men5 ming2 tian1 kan4 dian4 ying3"),
    ("S0003", None, "wo3 qu4 xue2 xiao4"),
    ("S0004", "天气 好 我们 去 公园", "tian1 qi4 hao3 wo3 men5 qu4 gong1 yuan2"),
    ("S0004", "这 本 书 很 好看", "zhe4 ben3 shu1 hen3 hao3 kan4"),
    ("S0004", "你 喜欢 什么 电影", "ni3 xi3 huan1 shen2 me5 dian4 ying3"),
    ("S0004", "公园 里 有 很 多 人", "gong1 yuan2 li3 you3 hen3 duo1 ren2"),
    ("S0724", "我们 明天 去 公园", "wo3 men5 ming2 tian1 qu4 gong1 yuan2"),
    ("S0724", "他 今天 看 电影", "ta1 jin1 tian1 kan4 dian4 ying3"),
    ("S0724", "你 喜欢 喝 茶 吗", "ni3 xi3 huan1 he1 cha2 ma5"),
    ("S0764", "北京 有 很 多 公园", "bei3 jing1 you3 hen3 duo1 gong1 yuan2"),
    ("S0764", "这 个 电影 很 好看", "zhe4 ge4 dian4 ying3 hen3 hao3 kan4"),
    ("S0764", "你们 喜欢 什么 书", "ni3 men5 xi3 huan1 shen2 me5 shu1"),
    ("S0764", None, "ming2 tian1 jian4"),
]

wav_root = os.path.join(work, "wav")
lines = []
counter = {}
for speaker, words, pinyin in UTTERANCES:
    split, voice, rate, pitch = SPEAKERS[speaker]
    index = counter.get(speaker, 0)
    counter[speaker] = index + 1
    uid = f"BAC009{speaker}W{121 + index:04d}"
    folder = os.path.join(wav_root, split, speaker)
    os.makedirs(folder, exist_ok=True)
    raw = os.path.join(work, "raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-a", "80", "-w", raw, pinyin],
                   check=True)
    # 16 kHz mono 16-bit WAV like AISHELL; trim silence, 0.1 s padding, peak -4 dBFS.
    subprocess.run(["sox", "-R", raw, "-r", "16000", "-c", "1", "-b", "16", os.path.join(folder, uid + ".wav"),
                    "silence", "1", "0.02", "-50d", "reverse", "silence", "1", "0.02", "-50d", "reverse",
                    "pad", "0.1", "0.1", "gain", "-n", "-4", "rate", "-v"], check=True)
    if words is not None:
        lines.append(f"{uid} {words}")

# The real transcript file is sorted by id.
with open(os.path.join(out, "data_aishell", "transcript", "aishell_transcript_v0.8.txt"), "w") as f:
    f.write("".join(line + "\n" for line in sorted(lines)))

# One archive per speaker, reproducibly.
for speaker, (split, *_ ) in sorted(SPEAKERS.items()):
    archive = os.path.join(out, "data_aishell", "wav", speaker + ".tar.gz")
    tar = subprocess.run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
                          "--mode=u=rwX,go=rX", "-cf", "-", f"{split}/{speaker}"],
                         cwd=wav_root, check=True, capture_output=True).stdout
    with open(archive, "wb") as f:
        f.write(subprocess.run(["gzip", "-n", "-9"], input=tar, check=True, capture_output=True).stdout)

with open(os.path.join(out, "data_aishell", "README.TXT"), "w") as f:
    f.write("""SYNTHETIC AISHELL-1-layout corpus (NOT AISHELL audio)
=====================================================

Made by corpora/scripts/make-mini-aishell.sh of the ds2-data repository with
espeak-ng's Mandarin pinyin voice (cmn-latn-pinyin). It mimics the layout of
AISHELL-1 as OpenSLR ships it (SLR33, data_aishell.tgz): one wav/<speaker>.tar.gz
per speaker and transcript/aishell_transcript_v0.8.txt, so that AISHELL loaders can
be exercised without the 15 GB download.

Audio:       16 kHz mono 16-bit WAV.
Transcripts: "<id> <words>", words of Chinese characters separated by spaces.
""")
print(f"done: {len(UTTERANCES)} WAVs, {len(lines)} transcript lines, {len(SPEAKERS)} speakers -> {out}",
      file=sys.stderr)
PY
