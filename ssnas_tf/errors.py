"""The library's own errors: bad input or settings, reported without a traceback.

Every error meant for the user derives from `SsnasError`; the `ssnas` commands
print its message and exit with `USER_ERROR` (2, argparse's code for bad
arguments). Any other exception is a bug in the library (or in TensorFlow): the
commands keep its traceback and exit with `INTERNAL_ERROR` (70, `EX_SOFTWARE` of
sysexits.h). The classes also derive from the builtin a caller caught before
(`ValueError` for bad values, `RuntimeError` for steps that cannot run), so
`except ValueError` still works.

A leaf module: it imports nothing, so every layer may raise these. The classes
stay importable from where they were defined before (`ssnas_tf.data.DataError`,
`ssnas_tf.nas.genotypes.GenotypeError`, `ssnas_tf.workflow.run.RunError`, ...).
"""

USER_ERROR = 2
INTERNAL_ERROR = 70


class SsnasError(Exception):
    """Base class of the errors whose message tells the user what to fix."""


class ConfigError(SsnasError, ValueError):
    """A setting (flag, config field, environment variable) that cannot work;
    the message names it."""


class DeviceError(ConfigError):
    """A distribution setting that cannot work (names the setting at fault)."""


class DataError(SsnasError, ValueError):
    """Bad or missing input data; the message names the file, field or shape."""


class GenotypeError(SsnasError, ValueError):
    """A malformed genotype; the message names the field at fault."""


class ArchitectureError(SsnasError, ValueError):
    """A malformed RandomNet architecture; the message names the field at fault."""


class PruneError(SsnasError, ValueError):
    """A classifier whose structure `prune_classifier` does not recognise."""


class RunError(SsnasError, RuntimeError):
    """A step cannot run: a missing or invalid artifact of an earlier step."""


class RunLockedError(RunError):
    """Another live process writes the run directory."""


class CheckpointError(SsnasError, RuntimeError):
    """A checkpoint that does not fit the model or optimizers it is restored into."""


class ExperimentError(SsnasError, RuntimeError):
    """The plan conflicts with what the experiment directory holds, or trials failed."""


__all__ = ["ArchitectureError", "CheckpointError", "ConfigError", "DataError",
           "DeviceError", "ExperimentError", "GenotypeError", "INTERNAL_ERROR",
           "PruneError", "RunError", "RunLockedError", "SsnasError", "USER_ERROR"]
