"""Per-epoch genotype derivation, logging and best-genotype selection."""

import json

import keras
import numpy as np
import tensorflow as tf

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


class HeldOutLoss:
    """Mean objective loss of a model on fixed held-out batches, in one call.

    Computes what `model.evaluate(held_out)` reports as `loss` (and
    `pair_accuracy`, under the ssl objective): the mean over the batches of
    `model.objective_loss(batch, training=False)`. Keras' `evaluate` builds a
    new iterator over the held-out pipeline every epoch; this keeps one
    iterator over `held_out.repeat()` and one traced function for the whole
    search. The held-out batches must be the same on every pass (a pipeline
    seeded per batch, as `view_pairs` is); a pass is exactly `steps` batches.

    Under a `tf.distribute` strategy other than the default, it falls back to
    `model.evaluate`, which splits batches across replicas.

    Args:
        held_out: a finite `tf.data.Dataset` of the objective's batches.
        steps: the number of batches in `held_out`.
    """

    def __init__(self, held_out, steps):
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        known = int(held_out.cardinality())
        if known >= 0 and known != steps:  # a pass must start where the last one did
            raise ValueError(f"held_out has {known} batches, not steps={steps}")
        self.held_out, self.steps = held_out, steps
        self._iterator = self._function = None

    def __call__(self, model):
        """{"loss": mean loss[, "pair_accuracy": mean accuracy]} of `model`."""
        if (tf.distribute.has_strategy()
                or model.distribute_strategy is not tf.distribute.get_strategy()):
            return model.evaluate(self.held_out, steps=self.steps, verbose=0,
                                  return_dict=True)
        if self._function is None:
            self._iterator = iter(self.held_out.repeat())
            self._function = tf.function(self._pass(model))
        loss, accuracy = (None if v is None else float(v)
                          for v in self._function(self._iterator))
        return {"loss": loss} if accuracy is None else {"loss": loss,
                                                        "pair_accuracy": accuracy}

    def criterion(self, model, logs):
        """The mean loss, for `GenotypeTracker`; puts `val_loss` (and
        `val_pair_accuracy`) into `logs` as fit's validation would."""
        logs.update({f"val_{key}": value for key, value in self(model).items()})
        return logs["val_loss"]

    def _pass(self, model):
        steps = self.steps
        with_accuracy = model.objective == "ssl"  # the pair accuracy of the views
        # Autograph turns the loop below into a while loop; the loss itself has
        # no tensor-dependent control flow, and converting its source (the
        # loss, the views, the model) took about 1 s.
        objective_loss = tf.autograph.experimental.do_not_convert(model.objective_loss)

        def mean_over_pass(iterator):
            loss_sum = accuracy_sum = tf.constant(0.0, tf.float32)
            for _ in tf.range(steps):
                loss, accuracy = objective_loss(next(iterator), training=False)
                loss_sum += tf.cast(loss, tf.float32)
                if with_accuracy:
                    accuracy_sum += tf.cast(accuracy, tf.float32)
            return loss_sum / steps, (accuracy_sum / steps if with_accuracy else None)
        return mean_over_pass
