#!/bin/sh
# Issue #19's low-label experiment (ran 2026-12-03 as `10 50 10`: BENCHMARKS.md, "Low-label gain from MAE
# pretraining"): MAE-pretrain mae_vit_tiny_patch4_28 on the 60,000 Fashion-MNIST
# training images without their labels, k-NN accuracy of its encoder, then fine-tune the encoder
# with the first 600 (1%) and, if FT_10PCT > 0, the first 6,000 (10%) labelled training images,
# against vit_tiny_patch4_28 from scratch on the same images with the same budget (epochs, batch,
# warm-up). Each arm is scored on all 10,000 test images from its LAST checkpoint (not the best one:
# the per-epoch test score, on the first EVAL_LIMIT test images, only shows progress).
#
#   sh scripts/low_label_mae.sh [PRE=10] [FT_1PCT=50] [FT_10PCT=10] [OUT=runs/low_label] [THREADS=1]
#
# Run it from a frozen copy of the tree (git archive) so that edits made while it runs do not change
# it half-way. TESSERA overrides the command (default: the current sources through tsx, in this
# process, no npx wrapper). With PIDFILE set, each stage writes its own pid there before it starts,
# so that SIGSTOP/SIGCONT of that pid pauses the work itself (nothing here depends on wall time).
set -eu
PRE=${1:-10}; FT1=${2:-50}; FT10=${3:-10}; OUT=${4:-runs/low_label}; THREADS=${5:-1}
T=${TESSERA:-node --import tsx src/cli/bin.ts}
PIDFILE=${PIDFILE:-}
# run OUTFILE COMMAND...: one stage, its stdout into OUTFILE, its pid into PIDFILE.
run() {
  out=$1; shift
  "$@" > "$out" &
  stage=$!
  [ -z "$PIDFILE" ] || echo "$stage" > "$PIDFILE"
  wait "$stage"
}
EVAL_LIMIT=1000
mkdir -p "$OUT"
echo "start $(date -u +%FT%TZ) PRE=$PRE FT_1PCT=$FT1 FT_10PCT=$FT10 THREADS=$THREADS T=$T" >> "$OUT/log.txt"

run "$OUT/mae.json" $T pretrain --method mae --epochs "$PRE" --warmup-epochs 1 --batch-size 128 \
  --threads "$THREADS" --eval-limit 2000 --output "$OUT/mae" --overwrite --json
echo "pretrained $(date -u +%FT%TZ)" >> "$OUT/log.txt"
run "$OUT/knn.json" $T eval --knn --checkpoint "$OUT/mae/last.safetensors" --threads "$THREADS" --json
echo "knn $(date -u +%FT%TZ)" >> "$OUT/log.txt"

# One arm: $1 name, $2 labelled images, $3 epochs, then the arm's own flags.
arm() {
  name=$1; n=$2; ep=$3; shift 3
  run "$OUT/$name.train.json" $T train --model vit_tiny_patch4_28 --model-kwargs global_pool=avg --train-limit "$n" --epochs "$ep" \
    --batch-size 64 --warmup-epochs "$(( (ep + 9) / 10 ))" --threads "$THREADS" --eval-limit "$EVAL_LIMIT" \
    --output "$OUT/$name" --overwrite --json "$@"
  run "$OUT/$name.eval.json" $T eval --checkpoint "$OUT/$name/last.safetensors" --threads "$THREADS" --json
  echo "$name $(date -u +%FT%TZ)" >> "$OUT/log.txt"
}
# MAE's fine-tuning recipe (layer decay 0.75) at 1e-3; scratch at the train command's own 2e-3.
for spec in "600 $FT1" "6000 $FT10"; do
  set -- $spec
  [ "$2" -gt 0 ] || continue
  arm "mae_ft_$1" "$1" "$2" --pretrained "$OUT/mae/last.safetensors" --layer-decay 0.75 --lr 1e-3
  arm "scratch_$1" "$1" "$2" --lr 2e-3
done
echo "done $(date -u +%FT%TZ)" >> "$OUT/log.txt"
[ -z "$PIDFILE" ] || rm -f "$PIDFILE"
