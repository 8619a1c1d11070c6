#!/usr/bin/env bash
# Partitioned preparation under a real Slurm (run by scripts/test; issue 13, item 4).
#
# Starts a one-node Slurm of its own (slurmctld + slurmd, auth/none, state in a temporary
# folder), then:
#  1. deploy/slurm/plan.sbatch (`prepare --plan-only`), then deploy/slurm/prepare.sbatch as
#     `--array=0-3` (`prepare --partition auto/4`, reading the plan) of a generated corpus,
#     and deploy/slurm/merge.sbatch, each with `--dependency=afterok`: the result equals a
#     single-machine run, byte for byte (every shard, manifest.json, rejected.jsonl);
#  2. the same without the plan step, with task 2 killed (SIGKILL through scancel) once it is writing, and only
#     index 2 resubmitted (`--array=2`, the partition count still 4): still identical.
#  3. deploy/slurm/train.sbatch: 2 ranks of data-parallel training under srun --mpi=pmix
#     log the losses of one process.
# Stops exactly the daemons it started (their PID files), also on failure.
#   Tests/slurm/run.sh BINARY
set -euo pipefail
binary="$(realpath "$1")"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/ds2-slurm.XXXXXX)"
state="$work/state"
export SLURM_CONF="$state/slurm.conf"
stop() {
  "$repo/scripts/local-slurm" stop "$state" || true
  rm -rf "$work"
}
trap stop EXIT
fail() { echo "Tests/slurm: FAIL: $*" >&2; tail -n 20 "$state"/*.log >&2 2>/dev/null || true; exit 1; }
"$repo/scripts/local-slurm" start "$state" || fail "Slurm did not start"

# A corpus large enough that a task runs for a few seconds: 8,000 one-second utterances,
# FLACs made by sox once and hard-linked under every name (LibriSpeech layout).
corpus="$work/corpus"
mkdir -p "$corpus"
for i in 0 1 2 3; do sox -n -r 16000 -b 16 -c 1 "$work/source-$i.flac" synth "1.$i" pinknoise vol 0.3; done
python3 - "$work" "$corpus" <<'PY'
import os, sys
work, root = sys.argv[1], sys.argv[2]
words = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()
for index in range(8000):
    split = "train-clean-100" if index < 7000 else "dev-clean"
    speaker, chapter, item = 100 + index // 500, 10 + (index // 50) % 10, index % 50
    folder = os.path.join(root, "LibriSpeech", split, str(speaker), str(chapter))
    os.makedirs(folder, exist_ok=True)
    name = f"{speaker}-{chapter}-{item:04d}"
    os.link(os.path.join(work, f"source-{index % 4}.flac"), os.path.join(folder, name + ".flac"))
    with open(os.path.join(folder, f"{speaker}-{chapter}.trans.txt"), "a") as f:
        f.write(name + " NUMBER " + " ".join(words[int(d)] for d in str(index)) + "\n")
PY
recipe="$work/recipe.yaml"
cat >"$recipe" <<YAML
corpus: {kind: librispeech, root: $corpus, splits: [train-clean-100, dev-clean]}
shards: {maxShardBytes: 4194304}
YAML

"$binary" prepare "$recipe" --output "$work/single" --threads 1 -q >/dev/null
digests() { (cd "$1" && find . -type f ! -name recipe.yaml ! -name .ds2-data.lock | LC_ALL=C sort | xargs sha256sum); }
digests "$work/single" >"$work/expected"

wait_for() {  # wait_for JOB...: until none of the jobs is queued or running
  for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  fail "jobs $* did not finish: $(squeue 2>&1)"
}

# 1. The deployment scripts: deploy/slurm/prepare.sbatch as an array of 4 and
#    merge.sbatch after it (memory and time lowered to fit this one-node test cluster).
out="$work/parts"
export PATH="$(dirname "$binary"):$PATH"
fit=(--mem=200M --time=10 --cpus-per-task=1)
plan=$(sbatch --parsable "${fit[@]}" -o "$work/plan.log" --export=ALL,RECIPE="$recipe",OUTPUT="$out" "$repo/deploy/slurm/plan.sbatch")
array=$(sbatch --parsable --dependency=afterok:"$plan" --array=0-3 "${fit[@]}" -o "$work/task-%a.log" \
  --export=ALL,N=4,RECIPE="$recipe",OUTPUT="$out" "$repo/deploy/slurm/prepare.sbatch")
merge=$(sbatch --parsable --dependency=afterok:"$array" "${fit[@]}" -o "$work/merge.log" \
  --export=ALL,OUTPUT="$out" "$repo/deploy/slurm/merge.sbatch")
wait_for "$plan" "$array" "$merge"
grep -q "read the plan" "$work/task-0.log" || fail "task 0 did not read the plan: $(cat "$work/plan.log" "$work/task-0.log" | tail -n 20)"
[ -f "$out/manifest.json" ] || fail "no manifest after the merge job: $(cat "$work/plan.log" "$work"/task-*.log "$work/merge.log" 2>&1 | tail -n 20)"
digests "$out" >"$work/got"
cmp -s "$work/expected" "$work/got" || fail "array + merge differs from the single run: $(diff "$work/expected" "$work/got" | head)"
echo "Tests/slurm: deploy/slurm/plan.sbatch, prepare.sbatch --array=0-3 and merge.sbatch (afterok each): byte-identical to one run"

# 2. Task 2 killed while writing, only index 2 resubmitted, then merge.
out="$work/killed"
array=$(sbatch --parsable --array=0-3 --cpus-per-task=1 -o "$work/killed-%a.log" \
  --wrap "'$binary' prepare '$recipe' --output '$out' --partition auto/4 --threads 1")
for _ in $(seq 3000); do
  [ -f "$out/partitions/2/progress.json" ] && break
  sleep 0.01
done
sleep 0.3
scancel --signal=KILL "${array}_2"
wait_for "$array"
[ ! -f "$out/partitions/2/part.json" ] || echo "Tests/slurm: (task 2 finished before it was killed; the resubmission is a no-op)"
again=$(sbatch --parsable --array=2 --cpus-per-task=1 -o "$work/again-%a.log" \
  --wrap "'$binary' prepare '$recipe' --output '$out' --partition auto/4 --threads 1")
merge=$(sbatch --parsable --dependency=afterok:"$again" -o "$work/merge2.log" --wrap "'$binary' merge '$out'")
wait_for "$again" "$merge"
[ -f "$out/manifest.json" ] || fail "no manifest after the resubmission: $(cat "$work"/again-*.log "$work/merge2.log" 2>&1 | tail -n 20)"
digests "$out" >"$work/got"
cmp -s "$work/expected" "$work/got" || fail "killed + resubmitted differs from the single run: $(diff "$work/expected" "$work/got" | head)"
echo "Tests/slurm: task 2 killed, --array=2 resubmitted, merged: byte-identical to one run"

# 3. Data-parallel training (issue 14): deploy/slurm/train.sbatch with 2 tasks (srun
#    --mpi=pmix, one rank each) trains 6 steps on the dataset of case 1 and logs the losses
#    of one process, within 1e-4.
model="$work/model.yaml"
cat >"$model" <<YAML
model:
  convolutions: [{channels: 4, kernelTime: 5, kernelFrequency: 21, strideTime: 2, strideFrequency: 4}]
  recurrentLayers: 1
  hidden: 32
training: {epochs: 1, batchSize: 8, optimizer: adam, learningRate: 1.0e-3, threads: 1}
YAML
"$binary" train "$work/single" --model "$model" --output "$work/run-one" --max-steps 6 -q >/dev/null
train=$(sbatch --parsable --ntasks=2 --cpus-per-task=1 --mem-per-cpu=200M --time=10 -o "$work/train.log" \
  --export=ALL,DATA="$work/single",RUN="$work/run-ranks",MODEL="$model",MAX_STEPS=6 "$repo/deploy/slurm/train.sbatch")
wait_for "$train"
grep -q "2 ranks" "$work/train.log" || fail "train.sbatch did not train on 2 ranks: $(tail -n 20 "$work/train.log")"
python3 - "$work/run-one/metrics.jsonl" "$work/run-ranks/metrics.jsonl" <<'PY' || fail "2 ranks under Slurm differ from one process"
import json, sys
def losses(path):
    return [json.loads(line)["loss"] for line in open(path) if json.loads(line).get("type") == "step"]
one, ranks = losses(sys.argv[1]), losses(sys.argv[2])
assert len(one) == len(ranks) == 6, (len(one), len(ranks))
worst = max(abs(a - b) / abs(a) for a, b in zip(one, ranks))
assert worst <= 1e-4, worst
print(f"Tests/slurm: train.sbatch, 2 ranks (srun --mpi=pmix): 6 steps, losses within {worst:.1e} of one process")
PY
