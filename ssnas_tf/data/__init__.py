"""Dataset loaders by name: `load_dataset("mfeat")`, `load_dataset("mmimdb", data_dir=...)`."""

import importlib

from ssnas_tf.data.base import (DataError, MODALITY_KINDS, MultimodalDataset,
                                SPLIT_NAMES)
from ssnas_tf.data.in_memory import as_dataset

# name -> (module, loader function); modules import lazily so that h5py or PIL
# are only needed by the loaders that use them.
DATASETS = {
    "mfeat": ("ssnas_tf.data.mfeat", "load_mfeat"),
    "avmnist": ("ssnas_tf.data.avmnist", "load_avmnist"),
    "csv": ("ssnas_tf.data.csv_files", "load_csv"),
    "mmimdb": ("ssnas_tf.data.mmimdb", "load_mmimdb"),
    "clipart": ("ssnas_tf.data.clipart", "load_clipart"),
    "npz": ("ssnas_tf.data.in_memory", "load_npz"),
}


def load_dataset(name, data_dir=None, **options):
    """Loads a dataset by name.

    Args:
        name: one of `DATASETS`.
        data_dir: where the files are; required by every dataset but `mfeat`
            (embedded) and `clipart` (Debian packages); for `npz`, the
            `.npz` file (or a folder holding one). Defaults to None.
        **options: loader-specific keyword arguments.

    Returns:
        A `MultimodalDataset`.

    Raises:
        DataError: unknown name, missing directory or malformed files.
    """
    if name not in DATASETS:
        raise DataError(
            f"unknown dataset '{name}'; choose one of {sorted(DATASETS)}")
    module_name, function_name = DATASETS[name]
    loader = getattr(importlib.import_module(module_name), function_name)
    return loader(data_dir=data_dir, **options)


__all__ = ["DATASETS", "DataError", "MODALITY_KINDS", "MultimodalDataset",
           "SPLIT_NAMES", "as_dataset", "load_dataset"]
