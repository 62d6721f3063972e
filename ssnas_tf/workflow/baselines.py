"""The baseline methods as `Run` subclasses over the same run directory.

* `fixed` (`FixedFusionRun`): no search; the `--fusion` preset genotype
  (`ssnas_tf.nas.presets`) over the run's backbone features is written as
  genotype.json, then the classifier is trained on the labeled split as in
  `supervised`.
* `surrogate` (`SurrogateRun`): MFAS-style model-based search, keras-tuner's
  Bayesian optimisation over BM-NAS genotypes (`ssnas_tf.tuners.surrogate`);
  the same artifacts as `supervised`.
* `randomnet` (`RandomNetRun`): RandomNet's random search over whole networks
  on raw inputs (`ssnas_tf.tuners.randomnet`); no backbones, no genotype.

Use `open_run` to get the right class for a run directory's method.
"""

import os
import time

from ssnas_tf.atomic import atomic_write_text
from ssnas_tf.nas.presets import preset_genotype
from ssnas_tf.workflow.run import Run, _log, _summary


class FixedFusionRun(Run):
    """A run whose "search" writes the `config.fusion` preset genotype."""

    def search(self):
        c = self.config
        start = time.perf_counter()
        if not os.path.exists(self.path("backbones.keras")):
            self.train_backbones()
        genotype = preset_genotype(c.fusion, self._backbone_features(), seed=c.seed)
        atomic_write_text(self.path("genotype.json"), genotype.to_json() + "\n")
        self._draw(genotype)
        _log(f"[ssnas] fixed fusion '{c.fusion}' (no search)\n" + _summary(genotype))
        return self._record(genotype=genotype.to_dict(), fusion=c.fusion,
                            search_criterion=f"none (preset '{c.fusion}')",
                            seconds={"search": round(time.perf_counter() - start, 1)})


def run_class(method):
    """The `Run` class of a method."""
    if method == "fixed":
        return FixedFusionRun
    return Run


def open_run(directory, config=None, verbose=2):
    """A `Run` (or baseline subclass) for `directory`.

    Args:
        directory: the run directory.
        config: a `RunConfig` for a new run; None to read config.json.
        verbose: Keras progress output. Defaults to 2.
    """
    if config is None:
        config = Run(directory, verbose=verbose).config
    return run_class(config.method)(directory, config, verbose=verbose)

