"""Deterministic execution, and the record of what a result depends on.

`configure_determinism` switches TensorFlow's op determinism on or off for the
process (a process-wide setting: the last call wins). `environment_record`
gathers what a figure depends on besides the run's config and seeds:
package versions, the CPU's oneDNN-relevant instruction sets, the oneDNN
switch and the thread counts.
"""

import os
import platform
import sys
from importlib import metadata

# CPU flags that change which oneDNN / Eigen kernels run (and so, possibly, the
# rounding of results): AVX-512 variants and AMX tiles.
_CPU_FLAG_PREFIXES = ("avx512", "amx")
_PACKAGES = ("tensorflow", "keras", "numpy", "ssnas_tf")


def configure_determinism(deterministic, intra_op_threads=None):
    """Turns TensorFlow's op determinism on (or off) for this process.

    On: `tf.config.experimental.enable_op_determinism()`, which makes every
    op, and tf.data's parallel maps, produce the same result on every run,
    and raises an error for an op that has no deterministic implementation.
    The number of threads one op uses changes results (measured:
    docs/reproducibility.md), so it is recorded, and can be fixed to reproduce
    a run made on a machine with another number of cores. It can only be set
    before TensorFlow's runtime starts.

    Args:
        deterministic: True to enable op determinism, False to disable it.
        intra_op_threads: threads of one op. Defaults to None:
            `default_intra_op_threads()` where it can still be set, else the
            count in force.

    Returns:
        {"deterministic", "intra_op_threads", "inter_op_threads"}: the counts
        in force (TensorFlow's 0, "its choice", resolved to the core count).

    Raises:
        RuntimeError: `intra_op_threads` differs from the count in force and
            the runtime has already started.
    """
    import tensorflow as tf
    # No public "disable" exists: a Run with deterministic=False after one with
    # True in the same process must still be able to switch it off.
    from tensorflow.python.framework import config as tf_config
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()
    threading = tf.config.threading
    in_force = threading.get_intra_op_parallelism_threads() or _cores()
    wanted = intra_op_threads or default_intra_op_threads()
    if wanted and wanted != in_force:
        try:
            threading.set_intra_op_parallelism_threads(wanted)
        except RuntimeError:
            if intra_op_threads:  # asked for; the default gives way to the runtime's
                raise RuntimeError(
                    f"--threads {intra_op_threads}: TensorFlow already runs with "
                    f"{in_force} threads per op in this process; set the thread "
                    f"count before TensorFlow runs its first op (a fresh process)"
                ) from None
    return {"deterministic": bool(deterministic),
            "intra_op_threads": threading.get_intra_op_parallelism_threads() or _cores(),
            "inter_op_threads": threading.get_inter_op_parallelism_threads() or _cores()}


def default_intra_op_threads(cores=None):
    """Threads per op when none are asked for: 1 on at most two cores, else
    None (TensorFlow's choice, one per core).

    On two cores the search step's many small ops run faster two at a time on
    one core each than each split over both cores (docs/performance.md:
    +35% at batch 32, and whole runs as fast or faster). Machines with more
    cores keep TensorFlow's choice: measured only on two.
    """
    return 1 if (_cores() if cores is None else cores) <= 2 else None


def _cores():
    """The cores this process may run on: TensorFlow's default thread count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count()


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """The sorted AVX-512 and AMX flags of the first CPU ([] if unknown)."""
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                if line.startswith("flags"):
                    return sorted({flag for flag in line.split(":", 1)[1].split()
                                   if flag.startswith(_CPU_FLAG_PREFIXES)})
    except OSError:
        pass
    return []


def package_versions():
    """Versions of python and the packages results depend on."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    from ssnas_tf.version import __version__
    versions["ssnas_tf"] = __version__  # the imported code, not an older install
    return versions


def environment_record():
    """What a result depends on outside its config: JSON-able dict."""
    return {"versions": package_versions(),
            "platform": f"{platform.system()} {platform.machine()}",
            "cpu_count": os.cpu_count(),
            "cpu_flags": cpu_flags(),
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "onednn_enabled": onednn_enabled(),
            "argv": list(sys.argv)}


def onednn_enabled():
    """Whether TensorFlow uses its oneDNN kernels in this process.

    TF_ENABLE_ONEDNN_OPTS=1/0 decides; unset, TensorFlow >= 2.9 turns oneDNN
    on for x86-64 Linux builds.
    """
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is not None:
        return value.strip().lower() in ("1", "true")
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


__all__ = ["configure_determinism", "cpu_flags", "onednn_enabled", "package_versions",
           "environment_record"]
