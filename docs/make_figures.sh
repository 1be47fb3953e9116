#!/usr/bin/env bash
# Regenerate every figure in docs/ from scratch: the runs of the teaching guide, then the copies.
# About 3.5 hours on 2 CPU cores, one run at a time (the sum of the measured runs). Needs real
# MNIST: set DATA_DIR (for example DATA_DIR=/path/to/data) or put the four files in ./data/mnist.
#
#     bash docs/make_figures.sh            # everything
#     bash docs/make_figures.sh diffusion  # one part: gan, cgan, wgan, adversarial, diffusion,
#                                          # inspect (run last)
set -euo pipefail
cd "$(dirname "$0")/.."
part=${1:-all}
want() { [ "$part" = all ] || [ "$part" = "$1" ]; }

if want gan; then
    # 1-2. minimax and logistic, 100,000 iterations each (default: dropout 0.3 in D); the
    # 20,000-iteration grids are frames of the same runs
    for loss in minimax logistic; do
        python gan.py --loss $loss --iters 100000 --parzen --out runs/gan/$loss-100k
        cp runs/gan/$loss-100k/samples_0020000.png docs/gan_${loss}_20k.png
        cp runs/gan/$loss-100k/samples_0100000.png docs/gan_${loss}_100k.png
        cp runs/gan/$loss-100k/quality.png docs/gan_${loss}_100k_quality.png
        # the losses and D(x), D(G(z)) over the first 20,000 iterations
        python -c "
import common, sys
history = common.load_checkpoint('runs/gan/$loss-100k/checkpoint.pt', 'gan')['history']
keep = sum(i <= 20000 for i in history['iteration'])
common.save_curves({key: history[key][:keep] for key in ('iteration', 'loss_d', 'loss_g', 'd_real', 'd_fake')},
                   'docs/gan_${loss}_20k_curves.png', panels=[['loss_d', 'loss_g'], ['d_real', 'd_fake']])"
    done
    # the fixed z across training: every 2,000 iterations to 20,000, then every 10,000
    python -c "
import common
frames = common.load_gif_frames('runs/gan/logistic-100k/progress.gif')   # one per 1,000
common.save_gif(frames[1:20:2] + frames[29::10], 'docs/gan_logistic_100k.gif', 0.4)"
    # without dropout in D: D memorizes the training set and FID rises after ~25,000 iterations
    python gan.py --loss logistic --iters 100000 --d-dropout 0 --parzen \
        --out runs/gan/logistic-100k-no-dropout
    python benchmarks/gan_dropout_figure.py runs/gan/logistic-100k-no-dropout \
        runs/gan/logistic-100k runs/gan/minimax-100k --out docs/gan_dropout.png
    cp runs/gan/logistic-100k-no-dropout/samples_0100000.png docs/gan_logistic_100k_no_dropout.png
    # another remedy, measured without dropout: the learning rate decaying to 0
    python gan.py --loss logistic --iters 100000 --lr-decay linear --d-dropout 0 --parzen \
        --out runs/gan/logistic-100k-decay
    cp runs/gan/logistic-100k-decay/quality.png docs/gan_logistic_100k_decay_quality.png
fi

if want cgan; then
    # 3. the conditional GAN, and a grid of one chosen digit
    python cgan.py --out runs/cgan/mlp-30k
    cp runs/cgan/mlp-30k/classes.png docs/cgan_classes.png
    python cgan.py --checkpoint runs/cgan/mlp-30k/checkpoint.pt --digit 3 --out docs/cgan_digit_3.png
fi

if want wgan; then
    # 4. the course's DCGAN against WGAN: the same networks, the GAN loss or the Wasserstein loss
    # (clipping, then the gradient penalty), 20 minutes of training each; then the clip sweep
    python wgan.py --loss gan --minutes 20 --iters 10000000 --eval-every 2500 --sample-every 2500 \
        --checkpoint-every 2500 --out runs/wgan/gan-20min
    python wgan.py --minutes 20 --iters 10000000 --eval-every 500 --sample-every 500 \
        --checkpoint-every 500 --out runs/wgan/clip-0.01-20min
    python wgan.py --gradient-penalty 10 --minutes 20 --iters 10000000 --eval-every 400 \
        --sample-every 400 --checkpoint-every 400 --out runs/wgan/gp-20min
    python benchmarks/wgan_figure.py --compare runs/wgan/gan-20min runs/wgan/clip-0.01-20min \
        runs/wgan/gp-20min --out docs/wgan_vs_gan.png
    for c in 0.1 0.01 0.001; do
        python wgan.py --clip $c --minutes 3 --iters 10000000 --eval-every 250 --sample-every 250 \
            --checkpoint-every 250 --out runs/wgan/sweep-clip-$c-3min
    done
    python benchmarks/wgan_figure.py --sweep runs/wgan/sweep-clip-0.1-3min \
        runs/wgan/sweep-clip-0.01-3min runs/wgan/sweep-clip-0.001-3min --out docs/wgan_clip_sweep.png
    for run in gan-20min clip-0.01-20min gp-20min sweep-clip-0.1-3min sweep-clip-0.01-3min \
            sweep-clip-0.001-3min; do
        mkdir -p docs/runs/wgan/$run && cp runs/wgan/$run/metrics.json docs/runs/wgan/$run/
    done
fi

if want adversarial; then
    # 5. adversarial examples: 4 -> 9, noise -> 9, success against eps
    python adversarial.py --out runs/adversarial/main
    for name in attack noise success_vs_eps; do
        cp runs/adversarial/main/$name.png docs/adversarial_$name.png
    done
fi

if want diffusion; then
    # 6. diffusion: classes, the denoising chain, guidance; then against the conditional GAN
    python diffusion.py --guidance 2 --out runs/diffusion/main
    for name in classes chain guidance; do
        cp runs/diffusion/main/$name.png docs/diffusion_$name.png
    done
    cp runs/diffusion/main/progress.gif docs/diffusion_progress.gif
    cp runs/diffusion/main/samples_0003500.png docs/diffusion_3500_steps.png
    cp runs/diffusion/main/quality.png docs/diffusion_quality.png
    [ -f runs/cgan/mlp-30k/checkpoint.pt ] || python cgan.py --out runs/cgan/mlp-30k
    python benchmarks/diffusion_vs_cgan.py --diffusion runs/diffusion/main/checkpoint.pt \
        --cgan runs/cgan/mlp-30k/checkpoint.pt --default-guidance 2 --figure docs/diffusion_vs_cgan.png
fi
if want inspect; then
    # the limits section: what the samples of each model get wrong (needs the runs above)
    mkdir -p runs/inspect
    python gan.py --checkpoint runs/gan/logistic-100k/checkpoint.pt --generate 2000 \
        --out runs/inspect/gan_logistic_100k.npz
    python benchmarks/inspect_samples.py runs/inspect/gan_logistic_100k.npz --out docs/inspect_gan.png
    python cgan.py --checkpoint runs/cgan/mlp-30k/checkpoint.pt --generate 2000 --out runs/inspect/cgan.npz
    python benchmarks/inspect_samples.py runs/inspect/cgan.npz --out docs/inspect_cgan.png
    python diffusion.py --checkpoint runs/diffusion/main/checkpoint.pt --generate 1000 \
        --out runs/inspect/diffusion.npz
    python benchmarks/inspect_samples.py runs/inspect/diffusion.npz --out docs/inspect_diffusion.png
fi
echo "figures in docs/"
