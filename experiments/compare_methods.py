"""Replaced by `ssnas experiment`; this wrapper forwards its arguments.

    python experiments/compare_methods.py --output DIR --fractions 0.05,1.0 --trials 3

is `ssnas experiment --output DIR --fractions 0.05,1.0 --trials 3` (see docs/experiments.md,
"Experiments"). The old `--seeds` and `--config` flags are gone: trials draw their
seeds from `--seed`, and every `ssnas run` setting is a flag.
"""

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from ssnas_tf.cli import main
    sys.exit(main(["experiment", *sys.argv[1:]]))
