"""Per-epoch genotype derivation, logging and best-genotype selection."""

import json

import keras
import numpy as np

from ssnas_tf.atomic import atomic_append_line, atomic_write_text
from ssnas_tf.nas.derive import derive_genotype
from ssnas_tf.nas.genotypes import Genotype


class GenotypeTracker(keras.callbacks.Callback):
    """Derives the genotype after every search epoch and keeps the best one.

    The criterion is computed on the search's validation split only, never on
    the test split (the BM-NAS reference selects on test scores). It is put
    into `logs["genotype_criterion"]`, so callbacks after this one in the list
    (EarlyStopping, ModelCheckpoint, TensorBoard, the History) see it.

    Args:
        score_fn: `score_fn(model, logs) -> float`, the validation criterion.
        mode: "min" or "max": which criterion value is better.
        log_path: optional JSON-lines file receiving, per epoch, the softmaxed
            alpha, beta, gamma, the genotype and the score; each line is
            added atomically. Defaults to None.
        verbose: print one line per epoch. Defaults to True.
    """

    def __init__(self, score_fn, mode="min", log_path=None, verbose=True):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.score_fn = score_fn
        self.mode = mode
        self.log_path = log_path
        self.verbose = verbose
        self.best_genotype = None
        self.best_score = None
        self.best_epoch = None
        self.history = []

    def _better(self, score):
        if self.best_score is None:
            return True
        return score < self.best_score if self.mode == "min" else score > self.best_score

    def on_epoch_end(self, epoch, logs=None):
        network = self.model.network
        genotype = derive_genotype(network)
        logs = {} if logs is None else logs
        score = float(self.score_fn(self.model, logs))
        logs["genotype_criterion"] = score
        if self._better(score):
            self.best_genotype, self.best_score, self.best_epoch = genotype, score, epoch + 1
        record = {"epoch": epoch + 1, "score": score,
                  "arch_weights": {k: np.round(v.astype(np.float64), 5).tolist()
                                   for k, v in network.arch_weights().items()},
                  "genotype": genotype.to_dict()}
        self.history.append(record)
        if self.log_path:  # a crash leaves whole lines only
            atomic_append_line(self.log_path, json.dumps(record))
        if self.verbose:
            used = ", ".join(genotype.used_inputs)
            print(f"  epoch {epoch + 1}: criterion {score:.4f} "
                  f"(best {self.best_score:.4f} @ {self.best_epoch}); "
                  f"cells read [{used}]; ops "
                  f"{[list(s.inner_steps) for s in genotype.steps]}", flush=True)

    def get_state(self):
        """The best-so-far and the history, JSON-able (for resuming a search)."""
        return {"best_genotype": (self.best_genotype.to_dict()
                                  if self.best_genotype is not None else None),
                "best_score": self.best_score, "best_epoch": self.best_epoch,
                "history": self.history}

    def set_state(self, state):
        """Restores `get_state()`'s output; rewrites the log to match it."""
        best = state["best_genotype"]
        self.best_genotype = Genotype.from_dict(best) if best is not None else None
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.history = list(state["history"])
        if self.log_path:
            # Drops epochs logged after the state was saved (an interrupted epoch).
            atomic_write_text(self.log_path,
                              "".join(json.dumps(r) + "\n" for r in self.history))
