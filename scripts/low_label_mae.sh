#!/bin/sh
# Issue #19's low-label experiment (NOT YET RUN): MAE-pretrain mae_vit_tiny_patch4_28 on the
# 60,000 Fashion-MNIST training images without their labels, then fine-tune its encoder with the
# first 1% (600) and 10% (6,000) labelled images, against vit_tiny_patch4_28 from scratch on the
# same images with the same budget; k-NN accuracy of the pretrained encoder too.
#   sh scripts/low_label_mae.sh [PRETRAIN_EPOCHS=100] [FINETUNE_EPOCHS=50] [OUT=runs/low_label]
set -eu
PRE=${1:-100}; FT=${2:-50}; OUT=${3:-runs/low_label}
T="npx tessera"
$T pretrain --epochs "$PRE" --warmup-epochs 5 --output "$OUT/mae" --overwrite
$T eval --knn --checkpoint "$OUT/mae/last.safetensors" --json | tee "$OUT/knn.json"
for n in 600 6000; do
  $T train --pretrained "$OUT/mae/last.safetensors" --model vit_tiny_patch4_28 --model-kwargs global_pool=avg \
    --layer-decay 0.75 --train-limit "$n" --epochs "$FT" --output "$OUT/mae_ft_$n" --overwrite --json | tee "$OUT/mae_ft_$n.json"
  $T train --model vit_tiny_patch4_28 --model-kwargs global_pool=avg \
    --train-limit "$n" --epochs "$FT" --output "$OUT/scratch_$n" --overwrite --json | tee "$OUT/scratch_$n.json"
done
