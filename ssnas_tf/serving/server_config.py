"""TF Serving configuration files written beside an export.

`export_classifier` writes two text-format protobuf files into the model
folder `<export_root>/<model_name>/`, beside the version folders (TF Serving
loads only integer folders, so it never mistakes them for a version):

* `models.config`: a `ModelServerConfig` serving this model from this folder
  (its absolute path), the latest version only;
* `batching_parameters.txt`: `BatchingParameters` for server-side batching
  (requests that arrive within `batch_timeout_micros` are merged into one
  batch of at most `max_batch_size` rows).

`server_command` gives the `tensorflow_model_server` command line that uses
both. Both files are rewritten, atomically, by every export of the model.
"""

import os

from ssnas_tf.atomic import atomic_write_text

MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
# Server-side batching: merged batches of up to 64 rows, waiting at most 2 ms.
BATCHING = {"max_batch_size": 64, "batch_timeout_micros": 2000,
            "max_enqueued_batches": 100, "num_batch_threads": 4}


def models_config_text(model_name, base_path):
    """A `ModelServerConfig` (text format) serving one model from `base_path`."""
    return (
        "# TF Serving model config: tensorflow_model_server "
        "--model_config_file=<this file>\n"
        "# base_path is the folder holding the integer version folders; in a\n"
        "# container, mount that folder at this same path.\n"
        "model_config_list {\n"
        "  config {\n"
        f"    name: \"{model_name}\"\n"
        f"    base_path: \"{base_path}\"\n"
        "    model_platform: \"tensorflow\"\n"
        "    model_version_policy { latest { num_versions: 1 } }\n"
        "  }\n"
        "}\n")


def batching_parameters_text(batching=None):
    """`BatchingParameters` (text format) for `--batching_parameters_file`."""
    batching = dict(BATCHING, **(batching or {}))
    lines = ["# TF Serving batching: tensorflow_model_server --enable_batching "
             "--batching_parameters_file=<this file>"]
    lines += [f"{key} {{ value: {int(value)} }}" for key, value in batching.items()]
    lines.append("pad_variable_length_inputs: false")
    return "\n".join(lines) + "\n"


def write_server_config(model_dir, model_name):
    """Writes `models.config` and `batching_parameters.txt` into `model_dir`."""
    model_dir = os.path.abspath(model_dir)
    atomic_write_text(os.path.join(model_dir, MODELS_CONFIG),
                      models_config_text(model_name, model_dir))
    atomic_write_text(os.path.join(model_dir, BATCHING_PARAMETERS),
                      batching_parameters_text())


def server_command(model_dir):
    """The `tensorflow_model_server` command line using the two files."""
    model_dir = os.path.abspath(model_dir)
    return ("tensorflow_model_server --port=8500 --rest_api_port=8501 "
            f"--model_config_file={os.path.join(model_dir, MODELS_CONFIG)} "
            "--enable_batching "
            f"--batching_parameters_file={os.path.join(model_dir, BATCHING_PARAMETERS)}")


__all__ = ["MODELS_CONFIG", "BATCHING_PARAMETERS", "BATCHING", "models_config_text",
           "batching_parameters_text", "write_server_config", "server_command"]
