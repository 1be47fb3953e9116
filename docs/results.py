"""Write docs/RESULTS.md from the measurements kept in docs/runs/, never typed by hand.

docs/runs/<part>/<run>/metrics.json is the metrics.json of a training run (gan.py, cgan.py,
wgan.py, diffusion.py, adversarial.py), copied there by docs/make_figures.sh; docs/runs/<part>/
<name>.json is a table that a benchmark wrote ({"title", "columns", "rows", "provenance"}). Every
table says the command that made it, the date, the commit and the machine.

    python docs/results.py
"""
import importlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

RUNS = Path(__file__).resolve().parent / "runs"
PARTS = [("gan", "The vanilla GAN (gan.py)"), ("cgan", "The conditional GAN (cgan.py)"),
         ("wgan", "DCGAN against WGAN (wgan.py)"),
         ("diffusion", "Diffusion (diffusion.py, latent_diffusion.py)"),
         ("adversarial", "Adversarial examples (adversarial.py)"),
         ("toy2d", "The models on points in the plane (toy2d.py)"),
         ("inspect", "What the averages hide: single samples (benchmarks/inspect_samples.py)"),
         ("measures", "What the quality numbers say"),
         ("noise", "How much the numbers move: draws and seeds"), ("speed", "Speed")]

# The comparisons made over seeds: (title, part, [run, or run@iteration for an evaluation of a
# longer run]); seed 0 of gan.py's pair is the first 20,000 iterations of its 100k runs.
SEEDS = [("gan.py --loss minimax, 20,000 iterations", "gan",
          ["minimax-100k@20000", "minimax-20k-seed1", "minimax-20k-seed2"]),
         ("gan.py --loss logistic, 20,000 iterations", "gan",
          ["logistic-100k@20000", "logistic-20k-seed1", "logistic-20k-seed2"])]


def number(value, digits=1):
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def command_from_flags(part, flags):
    """The command of a run that predates provenance: its flags that differ from the defaults."""
    script = importlib.import_module(part)
    defaults = vars(script.parse_args([]))
    given = [f"--{key.replace('_', '-')} {value}" for key, value in flags.items()
             if key != "data_dir" and value != defaults.get(key)]
    return " ".join(["python", f"{part}.py", *given])


def provenance(metrics, part=None, measured=True):
    """How a run was made; measured=False for runs no classifier measured (toy2d.py's points)."""
    made = metrics.get("provenance")
    if not made and part and "flags" in metrics:
        return (f"`{command_from_flags(part, metrics['flags'])}` (the command rebuilt from the "
                f"run's flags; date and commit not recorded)")
    if not made:   # the oldest runs kept only their configuration
        config = ", ".join(f"{key} {value}" for key, value in metrics.get("config", {}).items()
                           if key != "image_shape")
        return (f"configuration {config}, {metrics['train_seconds'] / 60:.1f} minutes of training "
                f"(command, date and commit not recorded)")
    classifier = metrics.get("classifier_sha256", "committed") if measured else None
    return (f"`{command_today(made['command'])}` ({made['date']}, commit {made['commit']}, "
            f"{made['machine']}"
            + (f"; classifier {classifier[:12]})" if classifier else ")"))


def command_today(command):
    """The command that reproduces a run with today's scripts: the latent model, once
    `diffusion.py --space latent`, is latent_diffusion.py (benchmarks/reproduce.py checks that
    both give the same weights, samples and numbers)."""
    if command.startswith("diffusion.py --space latent"):             # a benchmark's row name
        return command.replace("diffusion.py --space latent", "latent_diffusion.py", 1)
    if command.startswith("python diffusion.py") and " --space latent" in command:
        return (command.replace(" --space latent", "")
                .replace("diffusion.py", "latent_diffusion.py", 1))
    return command


def markdown_table(columns, rows, as_written=False):
    """A markdown table; floats with one decimal, or as_written (a benchmark's own rounding)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    show = str if as_written else number
    return lines + ["| " + " | ".join(show(cell) for cell in row) + " |" for row in rows]


def run_summary(runs):
    """One row per training run: length, training time and the final and best quality."""
    rows = []
    for name, metrics in runs:
        accuracy = metrics.get("conditional_accuracy")
        rows.append([name, metrics.get("iterations", ""),
                     round(metrics.get("train_seconds", 0) / 60, 1),
                     metrics.get("n", ""), metrics.get("fid", ""),
                     f"{number(metrics['best_fid'])} ({metrics['best_iteration']:,})"
                     if "best_fid" in metrics else "",
                     number(metrics.get("class_entropy", ""), 3),
                     f"{accuracy:.2%}" if accuracy is not None else "",
                     f"{metrics['parzen_log_likelihood']:.1f} +- "
                     f"{metrics['parzen_standard_error']:.1f}"
                     if "parzen_log_likelihood" in metrics else ""])
    return markdown_table(["run", "iterations", "training minutes", "N", "FID", "best FID (at)",
                           "class entropy", "conditional accuracy", "Parzen"], rows)


def run_details(metrics):
    """The numbers of a run's last logged iterations and its class mix at the end."""
    names = {"loss_d": "L_D", "loss_g": "L_G", "d_real": "D(x)", "d_fake": "D(G(z))",
             "loss": "loss"}
    logged = [f"{names.get(key[6:], key[6:])} {value:.3g}" for key, value in metrics.items()
              if key.startswith("final_") and isinstance(value, float)]
    lines = [f"the last logged means (over the run's last logging interval of at most 100 "
             f"iterations): {', '.join(logged)}"] if logged else []
    histogram = metrics.get("class_histogram")
    if histogram:
        shares = [count / sum(histogram) for count in histogram]
        lines.append("class shares at the end (0-9): " + ", ".join(f"{share:.1%}"
                                                                  for share in shares))
    return [line for entry in lines for line in (entry, "")]


def evaluations(metrics):
    """The run's evaluations over training, one row each."""
    found = metrics.get("evaluations", {})
    keys = [key for key in ("eval_train_minutes", "eval_fid", "eval_class_entropy",
                            "eval_conditional_accuracy", "eval_wasserstein",
                            "eval_d_overfitting_gap")
            if key in found]
    shown = {"eval_fid": lambda v: f"{v:.1f}", "eval_train_minutes": lambda v: f"{v:.1f}",
             "eval_conditional_accuracy": lambda v: f"{v:.1%}"}
    rows = [[iteration] + [shown.get(key, lambda v: f"{v:.3f}")(found[key][index]) for key in keys]
            for index, iteration in enumerate(found.get("eval_iteration", []))]
    return markdown_table(["iteration"] + [key[5:].replace("_", " ") for key in keys], rows)


def attack_table(metrics):
    """adversarial.py: the targeted attack under both stopping rules, FGSM, the eps sweep and
    noise turned into the target."""
    flipped, confident, fgsm, noise, sweep = (metrics[key] for key in (
        "iterative", "iterative_confident", "fgsm", "noise", "sweep"))
    pair, name = f"{metrics['source']} -> {metrics['target']}", metrics["attack"]
    rows = [[f"{name} {pair}, eps {metrics['eps']}, until the class flips",
             f"{flipped['success_rate']:.1%} of {flipped['images']}",
             flipped["target_probability_mean"], flipped["linf_mean"], flipped["l2_mean"],
             flipped["iterations_mean"]],
            [f"{name} {pair}, eps {metrics['eps']}, until p(target) >= {metrics['confidence']}",
             f"{confident['converted_share']:.1%} of {confident['images']}",
             confident["target_probability_mean"], confident["linf_mean"], confident["l2_mean"],
             confident["iterations_mean"]],
            [f"FGSM {pair}, eps {metrics['eps']}, one step",
             f"{fgsm['success_rate']:.1%} of {fgsm['images']}",
             fgsm["target_probability_mean"], fgsm["linf_mean"], fgsm["l2_mean"], 1],
            [f"{noise['kind']} noise -> {metrics['target']}, no ball, until p(target) >= "
             f"{metrics['confidence']}", f"{noise['converted_share']:.0%} of {noise['images']}",
             noise["target_probability_mean"], noise["linf_mean"], noise["l2_mean"],
             noise["iterations_mean"]]]
    lines = [f"classifier test accuracy {metrics['classifier_test_accuracy']:.2%}", ""]
    lines += markdown_table(["attack", "success", "mean p(target)", "mean L-inf", "mean L2",
                             "mean steps"], [[number(cell, 3) for cell in row] for row in rows])
    steps = sweep.get("steps", [metrics["steps"]] * len(sweep["eps"]))   # older runs: --steps
    lines += ["", f"success rate (the class flips) against eps, on {sweep['images']} images:", ""]
    lines += markdown_table(["eps", f"{name} steps", name, "FGSM"],
                            [[f"{e:.2f}", n, f"{p:.0%}", f"{f:.0%}"] for e, n, p, f in zip(
                                sweep["eps"], steps, sweep["iterative"], sweep["fgsm"])])
    return lines


def toy_tables(name, metrics):
    """toy2d.py: one table per experiment."""
    seconds = f"; {metrics['seconds']} s"
    if name.startswith("gan"):
        shape = {"ring": "ring of 8 Gaussians", "grid": "5 x 5 grid of 25 Gaussians"}[
            metrics.get("data", "ring")]
        columns = [f"modes covered (of {metrics.get('modes', 8)})", "high-quality share",
                   f"arrows' mean length, first {metrics['first_steps']} steps"]
        row = [metrics["modes_covered"], f"{metrics['high_quality']:.1%}",
               metrics["arrow_mean_length_first_steps"]]
        if "d_believed_range" in metrics:
            columns += ["D's belief over the plane: lowest, highest",
                        "L_D, L_G (mean of the last 100 steps)"]
            row += [", ".join(map(str, metrics["d_believed_range"])),
                    f"{metrics['loss_d_last_100']}, {metrics['loss_g_last_100']}"]
        bug = ", D ending in a sigmoid (--double-sigmoid)" if metrics.get("double_sigmoid") else ""
        return [f"{shape}, --loss {metrics['loss']}{bug}, {metrics['steps']:,} steps after "
                f"D's {metrics['d_warmup']} alone, G with {metrics['g_hidden']} hidden units"
                + seconds, ""] + markdown_table(columns, [row], as_written=True)
    if name.startswith("critic"):
        slopes, fixed = metrics["figure_2"], metrics.get("figure_1")
        rows = [[critic, recipe(value), value["modes_covered"], f"{value['high_quality']:.1%}"]
                for critic, value in metrics.items() if isinstance(value, dict)
                and "modes_covered" in value]
        averaged = "; coverage: the mean of the last 10 evaluations (every 50 steps)"
        lines = [f"the ring, {metrics['steps']:,} steps each" + (averaged if fixed else "")
                 + seconds, ""] + markdown_table(
            ["loss", "recipe", "modes covered (of 8)", "high-quality share"], rows,
            as_written=True)
        if fixed:
            lines += ["", f"against a generator fixed at data + N(0, I) (the WGAN-GP paper's "
                          f"Figure 1), {fixed['steps']:,} critic steps: the first step at which "
                          f"each critic's loss (a mean of 100 steps) came within 5% of its whole "
                          f"fall: "
                      + ", ".join(f"{key} {step:,}" for key, step in fixed["settled_at"].items())]
        return lines + [
            "", f"1-D (the WGAN paper's Figure 2): mean |dD/dx| at the fake points "
                f"{slopes['d_slope_at_fakes']}, mean |df/dx| of the critic there "
                f"{slopes['critic_slope_at_fakes']}"]
    if name.startswith("diffusion"):
        rows = [[w, f"{value['on_class']:.1%}", value["spread"]]
                for w, value in metrics["guidance"].items()]
        return [f"Swiss roll, three classes, {metrics['steps']:,} steps; DDIM 50 steps, 600 "
                f"samples" + seconds, ""] + markdown_table(
            ["guidance", "on their class's piece", "spread (mean distance to the class's mean)"],
            rows, as_written=True)
    rows = []
    for variant, runs in metrics["runs"].items():
        modes = [run["modes_covered"] for run in runs]
        shares = [run["high_quality"] for run in runs]
        rows.append([variant, ", ".join(map(str, modes)), f"{sum(modes) / len(modes):.1f}",
                     ", ".join(f"{share:.1%}" for share in shares),
                     f"{sum(shares) / len(shares):.1%}"])
    seeds = [run["seed"] for run in runs]
    averaged = ("; each run's numbers: the mean of its last 10 evaluations (every 50 steps)"
                if isinstance(modes[0], float) else "")
    return [f"the ring, {metrics['steps']:,} steps a run, seeds {seeds[0]}-{seeds[-1]}"
            + averaged + seconds, ""] + markdown_table(
        ["loss", "modes covered, each seed", "mean", "high-quality share, each seed", "mean"],
        rows, as_written=True)


def recipe(value):
    """A toy critic's training recipe, as toy2d.CRITICS writes it."""
    if "n_critic" not in value:
        return ""
    if value["loss"] == "gan":
        return f"{value['n_critic']} step, Adam"
    if value.get("gradient_penalty"):
        return (f"{value['n_critic']} steps, Adam {value.get('lr', 1e-3):g} "
                f"{tuple(value.get('betas', (0.0, 0.9)))}")
    return f"{value['n_critic']} steps, RMSprop {value.get('lr', 1e-3):g}"


def spread(values, digits):
    """mean +- standard deviation (over draws or seeds)."""
    if len(values) < 2:
        return number(values[0], digits) if values else ""
    return f"{np.mean(values):.{digits}f} +- {np.std(values, ddof=1):.{digits}f}"


def noise_tables():
    """benchmarks/noise.py's draws and control, and the comparisons of SEEDS."""
    lines = []
    path = RUNS / "noise" / "draws.json"
    if path.exists():
        found = json.loads(path.read_text())
        lines += [f"**Draws from one checkpoint**: {provenance(found)}", "",
                  "Each draw redoes z (the diffusion noise) and a batch-norm generator's standing "
                  "statistics; mean +- standard deviation over the draws.", ""]
        rows = []
        for name, entry in found["draws"].items():
            for n, values in entry["by_n"].items():
                accuracy = values.get("conditional_accuracy")
                rows.append([f"{name} ({entry['model']})", f"`{entry['checkpoint']}`",
                             f"{int(n):,}", entry["draws"], spread(values["fid"], 2),
                             spread(values["class_entropy"], 3),
                             spread([100 * a for a in accuracy], 2) + " %" if accuracy else ""])
        lines += markdown_table(["model", "checkpoint", "N", "draws", "FID", "class entropy",
                                 "conditional accuracy"], rows, as_written=True) + [""]
        if "control" in found:
            lines += ["**Variety inside a class** (the same command, --control): 10,000 images, "
                      "FID against the test set", ""]
            lines += markdown_table(found["control"]["columns"], [
                [name, f"{fid:.2f}", f"{entropy:.3f}"] for name, fid, entropy in
                found["control"]["rows"]], as_written=True) + [""]
    rows = []
    for title, part, names in SEEDS:
        values = [seed_numbers(part, name) for name in names]
        if None in values:
            continue
        fids, entropies = [v[0] for v in values], [v[1] for v in values]
        rows.append([title, ", ".join(f"{fid:.1f}" for fid in fids), spread(fids, 1),
                     ", ".join(f"{e:.3f}" for e in entropies), spread(entropies, 3)])
    if rows:
        lines += ["**Over seeds** (N = 10,000; the runs of the sections above; seeds 1 and 2 ran "
                  "beside other jobs, so their training minutes are no timings)", ""]
        lines += markdown_table(["runs", "FID, seeds 0, 1, 2", "mean +- SD",
                                 "class entropy, each seed", "mean +- SD"], rows,
                                as_written=True) + [""]
    return lines


def seed_numbers(part, name):
    """(FID, class entropy) of a kept run at its end, or of run@iteration at that evaluation."""
    name, _, at = name.partition("@")
    path = RUNS / part / name / "metrics.json"
    if not path.exists():
        return None
    metrics = json.loads(path.read_text())
    if not at:
        return metrics["fid"], metrics["class_entropy"]
    found = metrics["evaluations"]
    index = found["eval_iteration"].index(int(at))
    return found["eval_fid"][index], found["eval_class_entropy"][index]


def section(part, title):
    folder = RUNS / part
    if part == "noise" and not noise_tables():
        return []
    runs = [(path.parent.relative_to(folder).as_posix(), json.loads(path.read_text()))
            for path in sorted(folder.glob("**/metrics.json"))]
    tables = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    if not runs and not tables:
        return []
    lines = [f"## {title}", ""]
    if part == "noise":
        return lines + noise_tables()
    if part == "adversarial":
        for name, metrics in runs:
            lines += [f"**{part}/{name}**: {provenance(metrics)}", ""] + attack_table(metrics) + [""]
        runs = []
    if part == "toy2d":
        for name, metrics in runs:
            lines += [f"**{part}/{name}**: {provenance(metrics, measured=False)}", ""]
            lines += toy_tables(name, metrics) + [""]
        runs = []
    if runs:
        lines += run_summary(runs) + [""]
        for name, metrics in runs:
            lines += [f"**{part}/{name}**: {provenance(metrics, part)}", ""]
            lines += run_details(metrics)
            if "autoencoder" in metrics and metrics["autoencoder"]:
                lines += ["autoencoder (stage 1): " + ", ".join(
                    f"{key.replace('_', ' ')} {number(value, 4 if value < 1 else 2)}"
                    for key, value in metrics["autoencoder"].items()), ""]
            if len(metrics.get("evaluations", {}).get("eval_iteration", [])) > 1:
                lines += evaluations(metrics) + [""]
    for table in tables:
        lines += [f"**{table['title']}**: {provenance(table)}", ""]
        rows = [[command_today(cell) if isinstance(cell, str) else cell for cell in row]
                for row in table["rows"]]
        lines += markdown_table(table["columns"], rows, as_written=True) + [""]
    return lines


def render():
    """The text of RESULTS.md, from the JSON files under docs/runs/."""
    lines = ["# Results", "",
             "Every number below was written by a run or a benchmark into the JSON files under",
             "`docs/runs/`, and this page by `python docs/results.py` from them; "
             "`bash docs/make_figures.sh` reruns them all. FID, class entropy and conditional "
             "accuracy are measured with the committed classifier "
             f"(`weights/mnist_classifier.pt`, SHA-256 {common.CLASSIFIER_SHA256[:12]}...) on "
             "N samples with labels 0-9 spread evenly; compare FIDs only at equal N. Training "
             "minutes count the training steps only.", ""]
    for part, title in PARTS:
        lines += section(part, title)
    return "\n".join(lines)


def main():
    with common.atomic_path(Path(__file__).resolve().parent / "RESULTS.md") as temporary:
        Path(temporary).write_text(render())
    print("wrote docs/RESULTS.md")


if __name__ == "__main__":
    main()
