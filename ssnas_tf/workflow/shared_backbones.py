"""Backbones trained once per trial number and shared across an experiment.

Trial t of every method and label fraction has the same split seed and the same
training seed, so its backbone step trains the same backbones on the same
samples: the non-test pool (`shared`), the external part (`external`), or none
(`none`, random). The labeled/unlabeled division, which the method and the
fraction change, is not among its inputs. The experiment therefore trains them
once per key, `BACKBONE_FIELDS` of the config plus the dataset fingerprint of
the trial's splits.json, and copies them into the other trials
(`DIR/.backbones/<key>.keras`). A trial that got a copy records
`backbones_shared_from` in results.json and 0 seconds for its backbone step.
"""

import hashlib
import json
import os
import shutil

from ssnas_tf.atomic import atomic_output
from ssnas_tf.workflow.resume import finished_steps

# Every RunConfig field the backbone step reads (directly, or through the
# splits' test/external draw, the augmentations and the TF set-up).
BACKBONE_FIELDS = (
    "dataset", "data_dir", "dataset_options", "test_fraction", "split_seed", "seed",
    "backbone_pretraining", "external_fraction", "backbones", "image_weights",
    "backbone_width", "backbone_epochs", "batch_size", "augment_overrides",
    "max_steps_per_epoch", "deterministic", "precision", "distribute",
    "sync_batch_norm")

CACHE_DIR = ".backbones"


def backbone_key(config, fingerprint):
    """A hex key naming the backbones of `config` on data with `fingerprint`."""
    record = {name: getattr(config, name) for name in BACKBONE_FIELDS}
    record["effective_split_seed"] = config.effective_split_seed
    record["fingerprint"] = fingerprint
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _cache_path(root, run):
    with open(run.path("splits.json")) as f:
        fingerprint = json.load(f)["fingerprint"]
    return os.path.join(root, CACHE_DIR, backbone_key(run.config, fingerprint) + ".keras")


def _trains_backbones(run):
    """RandomNet designs its own extractors: nothing to share."""
    from ssnas_tf.workflow.steps import TrainBackbones
    return issubclass(run.STEPS["backbones"], TrainBackbones)


def reuse_backbones(root, run):
    """Copies the shared backbones into a started `run` that has none yet.

    Returns:
        True when they were copied.
    """
    if not _trains_backbones(run) or "backbones" in finished_steps(
            run.path("results.json")):
        return False
    cached = _cache_path(root, run)
    if not os.path.exists(cached):
        return False
    with atomic_output(run.path("backbones.keras"), suffix=".keras") as tmp:
        shutil.copyfile(cached, tmp)
    run._record(seconds={"backbones": 0.0},
                backbones_shared_from=os.path.relpath(cached, run.directory))
    return True


def share_backbones(root, run):
    """Puts a run's trained backbones into the cache, unless already there."""
    if not _trains_backbones(run):
        return
    cached = _cache_path(root, run)
    if os.path.exists(cached) or not os.path.exists(run.path("backbones.keras")):
        return
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    with atomic_output(cached, suffix=".keras") as tmp:
        shutil.copyfile(run.path("backbones.keras"), tmp)


__all__ = ["BACKBONE_FIELDS", "backbone_key", "reuse_backbones", "share_backbones"]
