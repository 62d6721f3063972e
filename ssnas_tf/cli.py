"""The `ssnas` command line: the whole method, or one step at a time.

    ssnas run                       # ssl, label fraction 0.1, embedded mfeat data
    ssnas run --method supervised --label-fraction 0.05 --seed 1 --output runs/sup
    ssnas search   --output runs/a  # backbones + architecture search
    ssnas pretrain --output runs/a  # contrastive pretraining of the derived network
    ssnas finetune --output runs/a [--genotype other/genotype.json]
    ssnas evaluate --output runs/a
    ssnas export   --output runs/a [--export-root DIR --model-name NAME]
    ssnas predict  --model runs/a --data new.npz|new.csv|FOLDER [--output predictions.csv]
    ssnas experiment --output DIR --methods ssl,supervised --fractions 0.01,0.1,1.0 \
                     --trials 10 [--jobs N] [--protocol exp2]   # many runs, statistics

Baselines (`ssnas_tf.workflow.baselines`):

    ssnas run --method fixed --fusion aoa --label-fraction 1.0   # a preset, no search
    ssnas finetune --output runs/a --genotype preset:aoa
    ssnas run --method surrogate --trials 20    # Bayesian optimisation over genotypes
    ssnas run --method randomnet --trials 100   # RandomNet, raw inputs

Every step reads and writes one run directory (see `ssnas_tf.workflow.run`).
"""

import argparse
import gc
import json
import os
import sys
import traceback

from ssnas_tf.errors import ConfigError

STEPS = ("search", "pretrain", "finetune", "evaluate", "export")


def _config_flags(parser, per_run=True):
    """Flags that define a run (for `run` and `search`, which start one).

    `per_run=False` (for `experiment`) leaves out --method and
    --label-fraction, which the experiment sets per trial, and names the
    baselines' --trials --search-trials.
    """
    from ssnas_tf.workflow.config import BACKBONE_PRETRAINING, RunConfig
    defaults = RunConfig()
    g = parser.add_argument_group("run settings")
    _data_flags(parser, g, defaults, per_run)
    g.add_argument("--backbone-pretraining", choices=BACKBONE_PRETRAINING,
                   default="external" if not per_run else defaults.backbone_pretraining,
                   help="shared: on all non-test samples; external: on a held-out "
                        "share no method uses otherwise (the paper's setting; the "
                        "experiment default); none: random frozen backbones")
    g.add_argument("--external-fraction", type=float, default=defaults.external_fraction,
                   help="share of the non-test samples held out by "
                        "--backbone-pretraining external")
    _schedule_flags(g, defaults)
    _network_flags(g, defaults)
    _execution_flags(g, defaults)
    _baseline_flags(parser.add_argument_group("baselines"), defaults,
                    "--trials" if per_run else "--search-trials")


def _data_flags(parser, g, defaults, per_run):
    """Dataset, method, label fraction and seed."""
    from ssnas_tf.workflow.config import METHODS
    g.add_argument("--dataset", default=defaults.dataset,
                   help="mfeat (embedded, default), clipart, mmimdb, avmnist, csv, npz")
    g.add_argument("--data-dir", default=None,
                   help="dataset files (mmimdb, avmnist: folder; csv: the .csv file; "
                        "npz: the .npz file of named arrays)")
    if per_run:
        g.add_argument("--method", default=defaults.method, choices=METHODS,
                       help="ssl (default), supervised, or a baseline: fixed, surrogate, "
                            "randomnet")
        g.add_argument("--label-fraction", type=float, default=defaults.label_fraction,
                       help="labeled fraction r of the non-test samples, in (0, 1]")
        g.add_argument("--labels-per-class", type=int, default=None, metavar="K",
                       help="K labeled samples per class instead of --label-fraction")
    else:
        parser.set_defaults(method=defaults.method, label_fraction=defaults.label_fraction,
                            labels_per_class=None)
    g.add_argument("--seed", type=int, default=defaults.seed)


def _schedule_flags(g, defaults):
    """Epochs of every step and the batch size."""
    g.add_argument("--epochs", type=int, default=defaults.search_epochs,
                   help="architecture search epochs")
    g.add_argument("--backbone-epochs", type=int, default=defaults.backbone_epochs)
    g.add_argument("--pretrain-epochs", type=int, default=defaults.pretrain_epochs)
    g.add_argument("--finetune-epochs", type=int, default=defaults.finetune_epochs)
    g.add_argument("--batch-size", type=int, default=defaults.batch_size)


def _network_flags(g, defaults):
    """Fusion network and backbone shapes, and the other model settings."""
    g.add_argument("--channels", type=int, default=defaults.channels, help="C")
    g.add_argument("--length", type=int, default=defaults.length, help="L")
    g.add_argument("--num-cells", type=int, default=defaults.num_cells)
    g.add_argument("--num-steps", type=int, default=defaults.num_steps)
    g.add_argument("--multiplier", type=int, default=defaults.multiplier,
                   help="how many of the last cells form the output")
    g.add_argument("--backbone-width", type=int, default=defaults.backbone_width)
    g.add_argument("--backbones", default=defaults.backbones, choices=("small", "reference"),
                   help="reference = VGG19 taps + Maxout MLP (BM-NAS, MM-IMDB)")
    g.add_argument("--image-weights", default=None,
                   help="VGG19 weights, required by --backbones reference: imagenet, "
                        "a weights file, or random (random frozen VGG19 features)")
    g.add_argument("--finetune-batch-size", type=int, default=defaults.finetune_batch_size)
    g.add_argument("--temperature", type=float, default=defaults.temperature)
    g.add_argument("--search-cross-modal", type=float, default=defaults.search_cross_modal,
                   help="ssl search: share of samples whose two views are split "
                        "across modalities (0: SimCLR's views)")
    g.add_argument("--pretrain-cross-modal", type=float,
                   default=defaults.pretrain_cross_modal,
                   help="the same share for the contrastive pretraining")
    g.add_argument("--projection-dim", type=int, default=defaults.projection_dim)
    g.add_argument("--primitives", default=",".join(defaults.primitives),
                   help="comma-separated primitive names")
    g.add_argument("--dataset-option", action="append", default=[], metavar="KEY=JSON",
                   help="extra loader option, e.g. target='\"category\"' (repeatable)")
    g.add_argument("--jit-compile", action="store_true", help="XLA (for GPUs)")
    g.add_argument("--max-steps-per-epoch", type=int, default=None,
                   help="cap on the batches per epoch (smoke tests, benchmarks)")
    g.add_argument("--tensorboard", action="store_true",
                   help="TensorBoard logs under OUTPUT/tensorboard (scalars per step, "
                        "alpha/beta/gamma per search epoch)")
    g.add_argument("--attention-dropout", type=float, default=None,
                   help="attention primitive's dropout (default: the dropout; "
                        "the BM-NAS code uses 0.1)")


def _execution_flags(g, defaults):
    """Precision, gradient order, initialisation and which steps run."""
    g.add_argument("--precision", default=defaults.precision,
                   choices=("float32", "mixed_bfloat16", "mixed_float16"),
                   help="Keras dtype policy of the training steps (bfloat16 is "
                        "fast on CPUs with AMX)")
    g.add_argument("--arch-order", type=int, default=defaults.arch_order, choices=(1, 2),
                   help="architecture gradient: 1 first-order DARTS, 2 the unrolled step")
    g.add_argument("--torch-defaults", action="store_true",
                   help="PyTorch's Dense init and BN running variance in the "
                        "fusion network, as in the BM-NAS code")
    g.add_argument("--deterministic", action=argparse.BooleanOptionalAction,
                   default=defaults.deterministic,
                   help="TensorFlow op determinism: bit-identical reruns with one "
                        "seed (default on; see docs/reproducibility.md)")
    g.add_argument("--threads", type=int, default=defaults.threads,
                   help="threads per op (default: 1 on a machine with at most 2 "
                        "cores, where it is faster, else one per core); results depend "
                        "on it: pass the intra_op_threads of a results.json to reproduce it")
    g.add_argument("--distribute", default=defaults.distribute,
                   choices=("none", "mirrored", "multi-worker"),
                   help="tf.distribute: mirrored = this machine's GPUs, multi-worker "
                        "= the workers in TF_CONFIG (each runs the same command)")
    g.add_argument("--sync-batch-norm", action="store_true",
                   help="batch-norm statistics over all replicas")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --output directory that holds a run "
                        "(without it, a run with the same settings is resumed)")
    g.add_argument("--no-contrastive-pretraining", dest="contrastive_pretraining",
                   action="store_false",
                   help="ssl: skip the contrastive pretraining of the derived network "
                        "(the paper's Experiment 2)")


def _baseline_flags(g, defaults, trials_flag="--trials"):
    from ssnas_tf.nas.presets import PRESETS
    g.add_argument(trials_flag, dest="trials", type=int, default=defaults.trials,
                   help="architectures tried by surrogate and randomnet")
    g.add_argument("--fusion", default=defaults.fusion, choices=PRESETS,
                   help="the preset genotype of --method fixed")
    g.add_argument("--trial-fraction", type=float, default=defaults.trial_fraction,
                   help="randomnet: share of the training samples each trial sees")
    g.add_argument("--trial-min-steps", type=int, default=defaults.trial_min_steps,
                   help="randomnet: the fewest steps a trial trains")
    g.add_argument("--randomnet-learning-rate", type=float,
                   default=defaults.randomnet_learning_rate,
                   help="randomnet: Adam's rate of the trials and (cosine-decayed) "
                        "the final training (the paper: 1e-4)")
    g.add_argument("--randomnet-normalization", action=argparse.BooleanOptionalAction,
                   default=defaults.randomnet_normalization,
                   help="randomnet: standardised map inputs and batch norm after every "
                        "weighted op (--no-randomnet-normalization: the paper's networks)")


def _config_from_args(args):
    from ssnas_tf.workflow.config import RunConfig
    options = {}
    for item in args.dataset_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--dataset-option expects KEY=JSON, got '{item}'")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return RunConfig(
        dataset=args.dataset, data_dir=args.data_dir, method=args.method,
        label_fraction=args.label_fraction, seed=args.seed,
        search_epochs=args.epochs, backbone_epochs=args.backbone_epochs,
        pretrain_epochs=args.pretrain_epochs, finetune_epochs=args.finetune_epochs,
        batch_size=args.batch_size, channels=args.channels, length=args.length,
        num_cells=args.num_cells, num_steps=args.num_steps,
        multiplier=args.multiplier, backbone_width=args.backbone_width,
        backbones=args.backbones, image_weights=args.image_weights,
        finetune_batch_size=args.finetune_batch_size, temperature=args.temperature,
        search_cross_modal=args.search_cross_modal,
        pretrain_cross_modal=args.pretrain_cross_modal, projection_dim=args.projection_dim,
        primitives=tuple(p for p in args.primitives.split(",") if p),
        dataset_options=options or None, jit_compile=args.jit_compile,
        attention_dropout=args.attention_dropout, torch_defaults=args.torch_defaults,
        trials=args.trials, fusion=args.fusion, trial_fraction=args.trial_fraction,
        randomnet_learning_rate=args.randomnet_learning_rate,
        randomnet_normalization=args.randomnet_normalization,
        trial_min_steps=args.trial_min_steps,
        precision=args.precision, arch_order=args.arch_order,
        contrastive_pretraining=args.contrastive_pretraining,
        max_steps_per_epoch=args.max_steps_per_epoch,
        deterministic=args.deterministic, threads=args.threads,
        distribute=args.distribute, sync_batch_norm=args.sync_batch_norm,
        backbone_pretraining=args.backbone_pretraining,
        external_fraction=args.external_fraction,
        labels_per_class=args.labels_per_class)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="ssnas", description="Self-supervised multimodal neural architecture "
        "search (BM-NAS search space + SimCLR), Keras 3.")
    parser.add_argument("--version", action="store_true", help="print the version")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="search, pretrain, finetune, evaluate, export")
    run.add_argument("--output", default=None,
                     help="run directory (default runs/<dataset>-<method>-r<r>-s<seed>)")
    _config_flags(run)
    search = sub.add_parser("search", help="start a run: backbones + architecture search")
    search.add_argument("--output", required=True)
    _config_flags(search)
    _experiment_parser(sub)
    for step in STEPS[1:]:
        p = sub.add_parser(step, help=f"the {step} step of an existing run directory")
        p.add_argument("--output", required=True, help="the run directory")
        p.add_argument("--tensorboard", action="store_true",
                       help="TensorBoard logs under OUTPUT/tensorboard")
        if step in ("pretrain", "finetune"):
            p.add_argument("--genotype", default=None,
                           help="use this genotype.json instead of the run's, or a "
                                "fixed fusion preset: preset:NAME[:SEED]")
        if step == "export":
            p.add_argument("--export-root", default=None)
            p.add_argument("--model-name", default=None)
            p.add_argument("--model-version", type=int, default=None)
    _predict_parser(sub)
    return parser


def _predict_parser(sub):
    p = sub.add_parser(
        "predict", help="predict new samples with a run's export (the served SavedModel)",
        description="Runs the exported SavedModel on new samples and writes one CSV row "
        "per sample: id, predicted class name(s), the probability of every class. "
        "Labels in the input are optional; with them, the metrics are printed.")
    p.add_argument("--model", required=True, metavar="RUN_DIR|EXPORT_DIR",
                   help="a run directory (its newest export), an export model "
                        "directory (largest version) or a version directory")
    p.add_argument("--data", required=True, metavar="FILE_OR_DIR",
                   help="an .npz of named arrays (one per served input, optional "
                        "'labels' and 'ids'), a .csv (image/audio/text and table "
                        "columns, label and id optional) or a dataset folder")
    p.add_argument("--dataset", default=None,
                   help="the dataset name (default: the one the export records)")
    p.add_argument("--output", default="predictions.csv",
                   help="the CSV file written (default: predictions.csv)")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--on-bad-rows", choices=("fail", "skip"), default="fail",
                   help="CSV rows that cannot be read: fail listing them with line "
                        "numbers (default), or skip them")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=JSON",
                   help="extra loader option for a dataset folder (repeatable)")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"need a positive integer, got '{text}'")
    return value


def _predict(args):
    """`ssnas predict`: writes the predictions, prints a summary (and metrics)."""
    from ssnas_tf.data import DataError
    from ssnas_tf.serving.predict import predict
    options = {}
    for item in args.dataset_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise DataError(f"--dataset-option expects KEY=JSON, got '{item}'")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    result = predict(args.model, args.data, dataset=args.dataset, output=args.output,
                     batch_size=args.batch_size, on_bad_rows=args.on_bad_rows,
                     dataset_options=options)
    print(f"[ssnas] predict: {len(result.ids)} samples -> {result.output}")
    if result.metrics is not None:
        print(json.dumps(result.metrics, indent=2))


def next_steps(results, output):
    """The block printed at the end of `ssnas run`: score, files, next commands."""
    export_dir = results.get("export_dir")
    lines = ["", "Done. " + ", ".join(
        f"{k} {results[k]}" for k in ("weighted_f1", "accuracy") if k in results)]
    files = [("classifier", ("classifier.keras",)),
             ("picture", ("architecture.png", "architecture.svg",
                          "randomnet_architecture.svg")),
             ("results", ("results.json",))]
    for label, names in files:
        found = [n for n in names if os.path.exists(os.path.join(output, n))]
        if found:
            lines.append(f"  {label + ':':<12}{os.path.join(output, found[0])}")
    if export_dir:
        lines.append(f"  {'export:':<12}{export_dir}")
        model_dir = os.path.dirname(export_dir)
        name = os.path.basename(model_dir)
        lines += [
            "Predict new samples (npz of named arrays, csv, or a dataset folder):",
            f"  ssnas predict --model {output} --data NEW_SAMPLES --output predictions.csv",
            "Serve the export with TF Serving (REST on port 8501):",
            f"  docker run -p 8501:8501 --mount type=bind,source={model_dir},"
            f"target=/models/{name} -e MODEL_NAME={name} -t tensorflow/serving"]
    return "\n".join(lines)


def _experiment_parser(sub):
    from ssnas_tf.workflow.experiment import PAPER_FRACTIONS, PROTOCOLS
    exp = sub.add_parser(
        "experiment", help="methods x label fractions x trials, resumable, with "
        "results.csv, summary.csv, choices.csv and label_fraction.png")
    exp.add_argument("--output", required=True, help="the experiment directory")
    exp.add_argument("--methods", default="ssl,supervised", help="comma-separated")
    exp.add_argument("--fractions", default=None,
                     help="comma-separated label fractions r (default: "
                     + ",".join(f"{f:g}" for f in PAPER_FRACTIONS) + "; exp2: 1)")
    exp.add_argument("--labels-per-class", dest="experiment_per_class", default=None,
                     metavar="K1,K2,...",
                     help="comma-separated numbers of labeled samples per class, "
                     "instead of --fractions")
    exp.add_argument("--trials", dest="experiment_trials", type=int, default=10, metavar="N",
                     help="trials per (method, r)")
    exp.add_argument("--protocol", default="exp1", choices=PROTOCOLS,
                     help="exp1: label fractions; exp2: ssl search without labels, "
                     "then supervised training with no contrastive pretraining")
    exp.add_argument("--jobs", type=int, default=1,
                     help="trials at once, each in its own process")
    exp.add_argument("--report-only", action="store_true",
                     help="write the reports of the trials finished so far and "
                     "run nothing (same flags as the experiment)")
    _config_flags(exp, per_run=False)


def _experiment_from_args(args):
    from ssnas_tf.workflow.experiment import PAPER_FRACTIONS, Experiment
    per_class = args.experiment_per_class is not None
    if per_class and args.fractions is not None:
        raise ConfigError("--fractions and --labels-per-class are alternatives: "
                         "pass one of them")
    flag, values = (("--labels-per-class", args.experiment_per_class) if per_class
                    else ("--fractions", args.fractions))
    if values is None:
        budgets = (1.0,) if args.protocol == "exp2" else PAPER_FRACTIONS
    else:
        try:
            budgets = tuple(float(f) for f in values.split(",") if f)
        except ValueError:
            raise ConfigError(f"{flag} expects comma-separated numbers, "
                             f"got '{values}'") from None
    return Experiment(_config_from_args(args),
                      tuple(m for m in args.methods.split(",") if m),
                      budgets, args.experiment_trials, args.protocol, per_class)


def _default_output(config):
    return os.path.join("runs", f"{config.dataset}-{config.method}-"
                                f"r{config.label_fraction:g}-s{config.seed}")


def _search(run, overwrite):
    """`ssnas search`: starts (or resumes) a run, then backbones and search."""
    from ssnas_tf.workflow.resume import finished_steps
    with run.lock():
        resumed = run.start(overwrite=overwrite)
        done = finished_steps(run.path("results.json")) if resumed else set()
        if "backbones" not in done:
            run.train_backbones()
        run.search()


def main(argv=None):
    # Before anything imports TensorFlow (building the parser reads RunConfig).
    from ssnas_tf.quiet import quiet_tensorflow
    quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from ssnas_tf.version import __version__
        print(__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 2
    from ssnas_tf.errors import INTERNAL_ERROR, USER_ERROR, SsnasError
    from ssnas_tf.serving.export import ExportError
    from ssnas_tf.workflow.baselines import open_run
    try:
        if args.command == "experiment":
            from ssnas_tf.workflow.experiment import report_experiment, run_experiment
            if args.report_only:
                report_experiment(_experiment_from_args(args), args.output)
            else:
                run_experiment(_experiment_from_args(args), args.output,
                               jobs=args.jobs, overwrite=args.overwrite)
        elif args.command in ("run", "search"):
            config = _config_from_args(args)
            output = args.output or _default_output(config)
            run = open_run(output, config, tensorboard=args.tensorboard)
            run.strategy  # created first: multi-worker needs it before any op
            run.configure_tensorflow()  # threads too must be set before any op
            if args.command == "run":
                results = run.run_all(overwrite=args.overwrite)
                print(json.dumps({k: results[k] for k in (
                    "dataset", "method", "label_fraction", "seed", "weighted_f1",
                    "export_dir", "seconds") if k in results}, indent=2))
                print(next_steps(results, output))
            else:
                _search(run, args.overwrite)
        elif args.command == "predict":
            _predict(args)
        else:
            run = open_run(args.output, tensorboard=args.tensorboard)
            run.strategy
            run.configure_tensorflow()
            with run.lock():
                if args.command in ("pretrain", "finetune"):
                    getattr(run, args.command)(genotype_path=args.genotype)
                elif args.command == "export":
                    run.export(args.export_root, args.model_name, args.model_version)
                else:
                    run.evaluate()
    except (SsnasError, ExportError) as err:
        # The library's own errors name the file or setting at fault: a
        # traceback adds nothing. (`ExportError` is serving.export's own.)
        print(f"ssnas {args.command}: error: {err}", file=sys.stderr)
        return USER_ERROR
    except Exception:  # a bug: keep its traceback, exit with another code
        traceback.print_exc()
        print(f"ssnas {args.command}: internal error (a bug in ssnas_tf or a "
              f"library it uses; the traceback above shows where)", file=sys.stderr)
        return INTERNAL_ERROR
    return 0


def console_main():
    """The `ssnas` command: `main()` in a process that ends with it.

    Python's shutdown runs full garbage collections over every object still
    alive, and with TensorFlow's graphs that took 1.7 s of the default run
    on 2 cores. Frozen objects are skipped by the collector (they are still
    freed, files closed and exit handlers run); `main()` itself stays safe to
    call many times in one process.
    """
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console_main())
