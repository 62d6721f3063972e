"""Times the alternating search step of the PyTorch BM-NAS reference.

The counterpart of benchmarks/search_step.py for the reference code
(github.com/Somedaywilldo/BM-NAS), on the same preset, so that the two step
times and parameter counts can be set side by side. The reference is not part
of this project: it is imported from a checkout given by --reference-dir
(added to sys.path), never vendored. Needs torch, numpy and IPython (the
reference's modules import it); torchvision is not needed.

    python benchmarks/reference_search_step.py --reference-dir /tmp/bmnas
    python benchmarks/reference_search_step.py --reference-dir /tmp/bmnas \\
        --batch-sizes 8,32,128 --precision autocast_bf16
    python benchmarks/reference_search_step.py --reference-dir /tmp/bmnas --threads 1

What is built, all from the reference's own classes, with the argument
namespace its MM-IMDB search script (main_darts_searchable_mmimdb.py) would
pass, at its defaults: six ReshapeInputLayer_MMIMDB (C_in 512, 512, 512, 512,
64, 128), the searchable FusionNetwork (models/search/darts/model_search.py),
the nn.Linear(C * L * multiplier, 23) classifier and BCEWithLogitsLoss, as in
Searchable_Image_Text_Net (models/search/mmimdb_darts_searchable.py). The
backbones (GP_VGG, MaxOut_MLP) are left out: random tensors of their output
shapes (NCHW maps, flat text vectors) go where their outputs go, so the
backbones are not part of the timed step, as in search_step.py.

One timed step, in training mode as in the reference's search loop: zero the
weight gradients, forward/backward on a train batch, the reference's cosine
scheduler update, Adam step on the weights (lr 1e-3, weight decay 1e-4); then
the reference's first-order Architect.step on a valid batch (zero the
architecture gradients, forward/backward, Adam step, lr 3e-4, betas
(0.5, 0.999), weight decay 1e-3). With --precision autocast_bf16 the forward
passes run under torch.autocast("cpu", dtype=torch.bfloat16); the loss and
backward stay outside it.

Each batch size runs in a fresh subprocess. Prints one JSON line per batch
size: impl, preset, precision, batch, step_ms_median, samples_per_s
(train-batch samples per second), cpu_ms_median (process CPU time per step,
all threads) and samples_per_cpu_s, peak_rss_mb, trainable_params (the
weights the weight optimizer gets, architecture parameters excluded, as in
search_step.py), arch_params, steps, threads (torch.get_num_threads(): torch's
default, one per core, unless --threads sets it).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

PRESETS = {
    # Same preset as benchmarks/search_step.py. Feature shapes are given
    # channels-last there; the reference takes the maps as (C, H, W).
    "mmimdb": dict(
        features={"Image_1": (32, 20, 512), "Image_2": (32, 20, 512),
                  "Image_3": (16, 10, 512), "Image_4": (8, 5, 512),
                  "Text_1": (64,), "Text_2": (128,)},
        num_classes=23, channels=192, length=16, num_cells=2, num_steps=1,
        multiplier=2, node_multiplier=1, dropout=0.1),
}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_args(cfg):
    """The namespace main_darts_searchable_mmimdb.py parses, at its defaults,
    with the preset's sizes (the reference calls cells 'steps' and inner steps
    'node_steps')."""
    return argparse.Namespace(
        seed=2, batchsize=8, epochs=30, drpt=cfg["dropout"],
        num_input_nodes=len(cfg["features"]), num_keep_edges=2,
        C=cfg["channels"], L=cfg["length"], multiplier=cfg["multiplier"],
        steps=cfg["num_cells"], node_steps=cfg["num_steps"],
        node_multiplier=cfg["node_multiplier"], num_outputs=cfg["num_classes"],
        f1_type="weighted", arch_learning_rate=3e-4, arch_weight_decay=1e-3,
        weight_decay=1e-4, eta_max=1e-3, eta_min=1e-6, Ti=1, Tm=2, parallel=False)


def run_one(reference_dir, preset, batch, steps, warmup, precision, threads=None):
    sys.path.insert(0, os.path.abspath(reference_dir))
    import numpy as np
    import torch
    if threads:
        torch.set_num_threads(threads)
    from torch import nn
    from models.auxiliary.aux_models import ReshapeInputLayer_MMIMDB
    from models.auxiliary.scheduler import LRCosineAnnealingScheduler
    from models.search.darts.architect import Architect
    from models.search.darts.model_search import FusionNetwork

    class FeatureFedNet(nn.Module):
        """Searchable_Image_Text_Net with the backbone outputs as its input."""

        def __init__(self, args, criterion, c_ins, bf16):
            super().__init__()
            self.bf16 = bf16
            self.reshape_layers = nn.ModuleList(
                ReshapeInputLayer_MMIMDB(c, args.C, args.L, args) for c in c_ins)
            self.fusion_net = FusionNetwork(
                steps=args.steps, multiplier=args.multiplier,
                num_input_nodes=args.num_input_nodes,
                num_keep_edges=args.num_keep_edges, args=args, criterion=criterion)
            self.central_classifier = nn.Linear(args.C * args.L * args.multiplier,
                                                args.num_outputs)

        def forward(self, features):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                reshaped = [layer(f) for layer, f in zip(self.reshape_layers, features)]
                out = self.central_classifier(self.fusion_net(reshaped))
            return out.float()

        def central_params(self):
            return [{"params": self.reshape_layers.parameters()},
                    {"params": self.fusion_net.parameters()},
                    {"params": self.central_classifier.parameters()}]

        def arch_parameters(self):
            return self.fusion_net.arch_parameters()

    cfg = PRESETS[preset]
    torch.manual_seed(0)
    args = reference_args(cfg)
    # (H, W, C) -> (C, H, W); flat vectors stay (C,)
    shapes = [(s[-1], *s[:-1]) for s in cfg["features"].values()]
    criterion = nn.BCEWithLogitsLoss()
    model = FeatureFedNet(args, criterion, [s[0] for s in shapes],
                          bf16=precision == "autocast_bf16")
    model.train()  # the reference searches in training mode (dev phase too)
    optimizer = torch.optim.Adam(model.central_params(), lr=args.eta_max,
                                 weight_decay=args.weight_decay)
    scheduler = LRCosineAnnealingScheduler(args.eta_max, args.eta_min, args.Ti, args.Tm,
                                           num_batches_per_epoch=1000)
    arch_optimizer = torch.optim.Adam(model.arch_parameters(), lr=args.arch_learning_rate,
                                      betas=(0.5, 0.999),
                                      weight_decay=args.arch_weight_decay)
    architect = Architect(model, args, criterion, arch_optimizer)

    def batch_of(n):
        x = [torch.rand(n, *s) for s in shapes]
        y = (torch.rand(n, cfg["num_classes"]) < 0.2).float()
        return x, y

    (train_x, train_y), (valid_x, valid_y) = batch_of(batch), batch_of(batch)

    def step():
        optimizer.zero_grad()
        loss = criterion(model(train_x), train_y)
        scheduler.step()
        scheduler.update_optimizer(optimizer)
        loss.backward()
        optimizer.step()
        architect.step(valid_x, valid_y, None)  # first order
        return loss.item()

    for _ in range(warmup):
        step()
    times, cpu_times = [], []
    for _ in range(steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    median, cpu_median = float(np.median(times)), float(np.median(cpu_times))
    params = sum(p.numel() for g in model.central_params() for p in g["params"]
                 if p.requires_grad)
    arch = sum(p.numel() for p in model.arch_parameters())
    return {"impl": "bmnas_pytorch", "preset": preset, "precision": precision,
            "batch": batch, "step_ms_median": round(1000 * median, 2),
            "samples_per_s": round(batch / median, 1),
            "cpu_ms_median": round(1000 * cpu_median, 2),
            "samples_per_cpu_s": round(batch / cpu_median, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1), "trainable_params": params,
            "arch_params": arch, "steps": steps, "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-dir", required=True,
                        help="checkout of github.com/Somedaywilldo/BM-NAS")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="mmimdb")
    parser.add_argument("--batch-sizes", default="32,128")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", default="float32",
                        choices=("float32", "autocast_bf16"))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's, one per core)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.reference_dir, "models", "search", "darts",
                                       "model_search.py")):
        parser.error(f"{args.reference_dir} is not a BM-NAS checkout")
    if args.one:
        print(json.dumps(run_one(args.reference_dir, args.preset, args.one, args.steps,
                                 args.warmup, args.precision, args.threads)), flush=True)
        return
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        cmd = [sys.executable, os.path.abspath(__file__),
               "--reference-dir", args.reference_dir, "--preset", args.preset,
               "--one", str(batch), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--precision", args.precision]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"batch {batch} failed:\n{out.stderr[-3000:]}")
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
