#!/usr/bin/env bash
# The whole course in one command: every experiment the docs show, then every figure, and
# docs/RESULTS.md from the runs' own metrics.json (kept in docs/runs/). Needs real MNIST: set
# DATA_DIR (for example DATA_DIR=/path/to/data) or put the four files in ./data/mnist. One run at a
# time; each part prints its time, and the end the total.
#
#     bash docs/make_figures.sh                 # every part, in order
#     bash docs/make_figures.sh diffusion latent  # some parts (a lecturer's rerun before a class)
#
# Parts: gan-minimax gan-logistic gan-no-dropout gan-seeds dcgan cgan cgan-conv wgan-gan wgan-clip
# wgan-gp-dropout wgan-gp wgan-sweep ema-bn adversarial diffusion latent no-dropout compare
# measures noise speed inspect toy2d. Each takes up to about an hour on 2 CPU
# cores; "ema-bn", "compare" and "inspect" use the checkpoints of the parts before them.
set -euo pipefail
cd "$(dirname "$0")/.."

keep() {   # keep() PART RUN: the run's metrics.json beside the figures, for docs/RESULTS.md
    mkdir -p "docs/runs/$1/$2" && cp "runs/$1/$2/metrics.json" "docs/runs/$1/$2/"
}

gan_run() {   # gan_run LOSS NAME FLAGS...: 100,000 iterations; the 20,000 grid is a frame of it
    local loss=$1 name=$2
    shift 2
    python gan.py --loss "$loss" --iters 100000 --parzen --out "runs/gan/$name" "$@"
    keep gan "$name"
}

gan_loss_part() {   # gan_loss_part LOSS: the 100k run, its 20k and 100k grids, its curves
    gan_run "$1" "$1-100k"
    cp "runs/gan/$1-100k/samples_0020000.png" "docs/gan_$1_20k.png"
    cp "runs/gan/$1-100k/samples_0100000.png" "docs/gan_$1_100k.png"
    first_20k_curves "$1"
}

part_gan-minimax() { gan_loss_part minimax; }

part_gan-logistic() {
    gan_loss_part logistic
    # the fixed z across training: every 2,000 iterations to 20,000, then every 10,000
    python -c "
import common
frames = common.load_gif_frames('runs/gan/logistic-100k/progress.gif')   # one per 1,000
common.save_gif(frames[1:20:2] + frames[29::10], 'docs/gan_logistic_100k.gif', 0.4)"
}

first_20k_curves() {   # the losses and D(x), D(G(z)) over the first 20,000 iterations
    python -c "
import common
history = common.load_checkpoint('runs/gan/$1-100k/checkpoint.pt', 'gan')['history']
keep = sum(i <= 20000 for i in history['iteration'])
common.save_curves({key: history[key][:keep] for key in ('iteration', 'loss_d', 'loss_g', 'd_real', 'd_fake')},
                   'docs/gan_$1_20k_curves.png', panels=[['loss_d', 'loss_g'], ['d_real', 'd_fake']])"
}

part_gan-no-dropout() {   # without dropout D memorizes the training set and FID rises
    gan_run logistic logistic-100k-no-dropout --d-dropout 0
    cp runs/gan/logistic-100k-no-dropout/samples_0100000.png docs/gan_logistic_100k_no_dropout.png
    if [ -f runs/gan/logistic-100k/checkpoint.pt ] && [ -f runs/gan/minimax-100k/checkpoint.pt ]; then
        python benchmarks/gan_dropout_figure.py runs/gan/logistic-100k-no-dropout \
            runs/gan/logistic-100k runs/gan/minimax-100k --out docs/gan_dropout.png
    fi
}

part_gan-seeds() {   # minimax against logistic at 20,000 iterations, seeds 1 and 2; seed 0 is the
    # first 20,000 iterations of the 100k runs (with no learning-rate decay a run's first
    # iterations do not depend on its length)
    for seed in 1 2; do
        for loss in minimax logistic; do
            python gan.py --loss "$loss" --seed "$seed" --out "runs/gan/$loss-20k-seed$seed"
            keep gan "$loss-20k-seed$seed"
        done
    done
}

part_dcgan() {   # the DCGAN of gan.py on MNIST (Fashion-MNIST and CIFAR-10: the same command)
    python gan.py --arch dcgan --minutes 10 --gif-samples 49 --out runs/gan/dcgan-10min
    keep gan dcgan-10min
    cp "$(ls runs/gan/dcgan-10min/samples_*.png | tail -1)" docs/gan_dcgan_10min.png
    cp runs/gan/dcgan-10min/progress.gif docs/gan_dcgan_progress.gif   # 49 fixed z over training
    cp runs/gan/dcgan-10min/curves.png docs/gan_dcgan_curves.png
}

part_cgan() {
    python cgan.py --out runs/cgan/mlp-30k
    keep cgan mlp-30k
    cp runs/cgan/mlp-30k/classes.png docs/cgan_classes.png
    python cgan.py --checkpoint runs/cgan/mlp-30k/checkpoint.pt --digit 3 --out docs/cgan_digit_3.png
}

part_cgan-conv() {   # the conditional DCGAN (projection discriminator): 100 fixed samples, a class a column
    python cgan.py --arch conv --minutes 5 --iters 10000000 --out runs/cgan/conv-5min
    keep cgan conv-5min
    cp runs/cgan/conv-5min/progress.gif docs/cgan_conv_progress.gif
}

wgan_run() {   # wgan_run NAME MINUTES EVAL_EVERY FLAGS...
    local name=$1 minutes=$2 every=$3
    shift 3
    python wgan.py --minutes "$minutes" --iters 10000000 --eval-every "$every" \
        --sample-every "$every" --checkpoint-every "$every" --out "runs/wgan/$name" "$@"
    keep wgan "$name"
}

part_wgan-gan() { wgan_run gan-20min 20 1000 --loss gan; }
part_wgan-clip() {
    wgan_run clip-0.01-20min 20 1000
    cp runs/wgan/clip-0.01-20min/curves.png docs/wgan_clip_curves.png
    # the critic trained on alone against the run's last generator: too weak, or one step behind?
    python benchmarks/wgan_figure.py --refit runs/wgan/clip-0.01-20min \
        --json docs/runs/wgan/critic_refit.json
}
part_wgan-gp-dropout() {   # the penalty with dropout in the critic: a random sub-network each pass
    # 10 minutes, against the first 10 of gp-20min (nothing in a WGAN-GP run depends on its length)
    wgan_run gp-dropout-10min 10 1000 --gradient-penalty 10 --dropout 0.2
}

part_wgan-gp() {
    wgan_run gp-20min 20 1000 --gradient-penalty 10 --dropout 0
    cp runs/wgan/gp-20min/curves.png docs/wgan_gp_curves.png
    if [ -f runs/wgan/gan-20min/checkpoint.pt ] && [ -f runs/wgan/clip-0.01-20min/checkpoint.pt ]; then
        python benchmarks/wgan_figure.py --compare runs/wgan/gan-20min runs/wgan/clip-0.01-20min \
            runs/wgan/gp-20min --out docs/wgan_vs_gan.png --json docs/runs/wgan/over_training.json
    fi
}

part_wgan-sweep() {
    for c in 0.1 0.01 0.001; do
        wgan_run sweep-clip-$c-3min 3 250 --clip $c
    done
    python benchmarks/wgan_figure.py --sweep runs/wgan/sweep-clip-0.1-3min \
        runs/wgan/sweep-clip-0.01-3min runs/wgan/sweep-clip-0.001-3min --out docs/wgan_clip_sweep.png \
        --json docs/runs/wgan/clip_sweep.json
}

part_adversarial() {   # 4 -> 9, noise -> 9, success against eps
    python adversarial.py --out runs/adversarial/main
    keep adversarial main
    for name in attack noise success_vs_eps; do
        cp runs/adversarial/main/$name.png docs/adversarial_$name.png
    done
}

part_diffusion() {   # the pixel DDPM: classes, the denoising chain, guidance
    python diffusion.py --eval-every 3500 --out runs/diffusion/pixel
    keep diffusion pixel
    for name in classes chain guidance; do
        cp runs/diffusion/pixel/$name.png docs/diffusion_$name.png
    done
    cp runs/diffusion/pixel/progress.gif docs/diffusion_progress.gif
}

part_latent() {   # Stable Diffusion in miniature: autoencoder, latent diffusion, cross-attention
    python latent_diffusion.py --out runs/diffusion/latent
    keep diffusion latent
    for name in classes chain guidance; do
        cp runs/diffusion/latent/$name.png docs/latent_$name.png
    done
}

part_no-dropout() {   # problem 2(a): the latent model without label dropout (measured by "compare")
    python latent_diffusion.py --p-uncond 0 --out runs/diffusion/latent-no-dropout
    keep diffusion latent-no-dropout
    cp runs/diffusion/latent-no-dropout/classes.png docs/latent_no_dropout_classes.png
}

part_compare() {   # pixel diffusion, latent diffusion (with and without label dropout), the CGAN
    python benchmarks/diffusion_vs_cgan.py --diffusion runs/diffusion/pixel/checkpoint.pt \
        --latent runs/diffusion/latent/checkpoint.pt --cgan runs/cgan/mlp-30k/checkpoint.pt \
        --unguided runs/diffusion/latent-no-dropout/checkpoint.pt \
        --guidance 0 0.5 1 2 4 --ddpm-samples 100 --figure docs/diffusion_vs_cgan.png \
        --json docs/runs/diffusion/comparison.json
}

part_ema-bn() {   # the averaged generators' batch norm: the live generator's statistics or their own
    python benchmarks/ema_batch_norm.py runs/gan/dcgan-10min runs/cgan/conv-5min \
        runs/wgan/gan-20min runs/wgan/clip-0.01-20min runs/wgan/gp-20min runs/wgan/gp-dropout-10min \
        --json docs/runs/measures/ema_batch_norm.json
}

part_noise() {   # how much the numbers move between draws from one checkpoint (those of the
    # parts run before it), and FID and the class entropy on samples with no variety in a class
    local pairs=() pair
    for pair in gan-mlp=runs/gan/logistic-20k-seed1 gan-dcgan=runs/gan/dcgan-10min \
                wgan-gp=runs/wgan/gp-20min cgan-mlp=runs/cgan/mlp-30k \
                pixel-diffusion=runs/diffusion/pixel latent-diffusion=runs/diffusion/latent; do
        if [ -f "${pair#*=}/checkpoint.pt" ]; then
            pairs+=("$pair/checkpoint.pt")
        else
            echo "noise: no ${pair#*=}/checkpoint.pt (run its part first); left out" >&2
        fi
    done
    python benchmarks/noise.py "${pairs[@]}" --draws 5 --n 1000 10000 --control \
        --json docs/runs/noise/draws.json
}

part_measures() {   # what FID, entropy and Parzen say about real data, noise and one image
    python benchmarks/calibrate_metrics.py --parzen --json docs/runs/measures/calibration.json
}

part_speed() {   # gan.py's in-memory batches against a DataLoader, and against a typical script;
    python benchmarks/speed.py --json docs/runs/speed/speed.json   # what a step and a sample cost
    python benchmarks/step_costs.py --json docs/runs/speed/step_costs.json
}

part_toy2d() {   # the models on points in the plane: seconds each
    toy gan-minimax gan --loss minimax
    toy gan-logistic gan --loss logistic
    toy gan-collapse gan --loss logistic --g-hidden 8     # a weaker G: the GAN collapses
    toy gan-double-sigmoid gan --loss logistic --double-sigmoid   # the course's bug
    toy gan-grid gan --loss logistic --data grid
    toy critic critic
    toy diffusion diffusion
    toy coverage coverage
}

toy() {   # toy NAME EXPERIMENT FLAGS...: one toy2d.py run, its figure and GIF in docs/
    local name=$1 experiment=$2
    shift 2
    python toy2d.py "$experiment" "$@" --out "runs/toy2d/$name"
    keep toy2d "$name"
    cp "runs/toy2d/$name/$experiment.png" "docs/toy2d_$name.png"
    if [ -f "runs/toy2d/$name/critic_fixed.png" ]; then   # the WGAN-GP paper's Figure 1
        cp "runs/toy2d/$name/critic_fixed.png" docs/toy2d_critic_fixed.png
    fi
    if [ -f "runs/toy2d/$name/progress.gif" ]; then
        cp "runs/toy2d/$name/progress.gif" "docs/toy2d_$name.gif"
    fi
}

part_inspect() {   # the limits section: what the samples of each model get wrong
    mkdir -p runs/inspect docs/runs/inspect
    python gan.py --checkpoint runs/gan/logistic-100k/checkpoint.pt --generate 2000 \
        --out runs/inspect/gan_logistic_100k.npz
    python cgan.py --checkpoint runs/cgan/mlp-30k/checkpoint.pt --generate 2000 --out runs/inspect/cgan.npz
    python diffusion.py --checkpoint runs/diffusion/pixel/checkpoint.pt --generate 1000 \
        --out runs/inspect/diffusion.npz
    for name in gan_logistic_100k cgan diffusion; do
        python benchmarks/inspect_samples.py runs/inspect/$name.npz --out docs/inspect_${name%%_*}.png \
            --json docs/runs/inspect/$name.json
    done
}

all=(gan-minimax gan-logistic gan-no-dropout gan-seeds dcgan cgan cgan-conv wgan-gan wgan-clip wgan-gp-dropout
     wgan-gp wgan-sweep ema-bn adversarial diffusion latent no-dropout compare measures noise speed
     inspect toy2d)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=("${all[@]}")
for part in "${parts[@]}"; do
    declare -F "part_$part" >/dev/null || { echo "unknown part $part; the parts: ${all[*]}" >&2; exit 2; }
done
mkdir -p runs
started=$SECONDS
for part in "${parts[@]}"; do
    part_started=$SECONDS
    "part_$part"
    seconds=$((SECONDS - part_started))
    printf 'part %-15s %3d min %02d s\n' "$part" $((seconds / 60)) $((seconds % 60)) | tee -a runs/course_times.txt
done
python docs/results.py
seconds=$((SECONDS - started))
printf 'total %d h %02d min for: %s\n' $((seconds / 3600)) $((seconds / 60 % 60)) "${parts[*]}" | tee -a runs/course_times.txt
