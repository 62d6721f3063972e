"""Requests for an exported model: REST JSON, gRPC `PredictRequest`, warm-up.

Every request a client or TF Serving sends to an export is built here, from
named NumPy arrays with a leading batch dimension (the raw inputs of
`serving_info.json`: uint8 images, float32 vectors, int32 ids, UTF-8 text):

* `rest_predict_body`: the JSON body of `POST /v1/models/<name>:predict` in the
  row ("instances") format, one dict of named inputs per sample, without the
  batch dimension; uint8 as integers 0-255, text as a plain string.
* `grpc_predict_request`: a `tensorflow.serving.PredictRequest` for
  `PredictionService.Predict`, one `TensorProto` per input, batch included.
* `warmup_records`: `PredictionLog`s holding such requests, the records of
  `assets.extra/tf_serving_warmup_requests` that TF Serving replays when it
  loads a version, before the version serves its first real request.

`check_request` refuses, naming the input, arrays whose dtype, shape or batch
size the export would refuse, so a client learns what is wrong before it
sends anything. Each export carries a generated example of both request
kinds in `request_examples/` (see `write_request_examples`);
`python -m ssnas_tf.serving.requests VERSION_DIR` prints them as a `curl`
command and a Python gRPC client.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

SIGNATURE_NAME = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
EXAMPLES_DIR = "request_examples"
REST_EXAMPLE = "predict.json"
GRPC_EXAMPLE = "predict_request.pbtxt"


class RequestError(ValueError):
    """Inputs that the export would refuse; the message names the input."""


def check_request(inputs, spec, nan_inputs=()):
    """Checks named arrays against an export's inputs before they are sent.

    Args:
        inputs: input name -> array with a leading batch dimension.
        spec: input name -> (per-sample shape, dtype name), e.g. from
            `input_spec(serving_info)`; None in a shape matches any size.
        nan_inputs: inputs where NaN (a missing value) is allowed
            (`serving_info["nan_inputs"]`). Defaults to ().

    Returns:
        input name -> array in the export's dtype (text as UTF-8 bytes).

    Raises:
        RequestError: missing or unknown inputs, a dtype that cannot be
            converted without loss, a wrong per-sample shape, different batch
            sizes, or NaN/inf in a float input.
    """
    missing, unknown = sorted(set(spec) - set(inputs)), sorted(set(inputs) - set(spec))
    if missing or unknown:
        raise RequestError(f"inputs: need exactly {sorted(spec)}; missing {missing}, "
                           f"unknown {unknown}")
    out, batch = {}, None
    for name, (shape, dtype) in spec.items():
        array = _as_dtype(name, np.asarray(inputs[name]), dtype)
        want = tuple(shape)
        if array.ndim != len(want) + 1 or any(
                w is not None and w != g for w, g in zip(want, array.shape[1:])):
            dims = ", ".join(["batch"] + ["any" if d is None else str(d) for d in want])
            raise RequestError(f"{name}: expected shape ({dims}{',' if not want else ''}), "
                               f"got {tuple(array.shape)}")
        if batch is None:
            batch = (name, array.shape[0])
        elif array.shape[0] != batch[1]:
            raise RequestError(f"{name}: batch size {array.shape[0]}, but {batch[0]} "
                               f"has batch size {batch[1]}; all inputs need the same "
                               f"batch size")
        finite = (~np.isinf(array) if name in nan_inputs else np.isfinite(array)) \
            if array.dtype.kind == "f" else None
        if finite is not None and array.size and not finite.all():
            rows = np.flatnonzero(~finite.reshape(len(array), -1).all(1))
            count = int((~finite).sum())
            raise RequestError(f"{name}: {count} non-finite values (NaN or inf) in "
                               f"rows {rows[:10].tolist()}")
        out[name] = array
    return out


def _as_dtype(name, array, dtype):
    if dtype == "string":
        if array.dtype.kind not in "OUS":
            raise RequestError(f"{name}: expected dtype string, got {array.dtype}")
        return np.array([v.encode("utf-8") if isinstance(v, str) else bytes(v)
                         for v in array.reshape(-1)], dtype=object).reshape(array.shape)
    if array.dtype.kind in "OUS":
        raise RequestError(f"{name}: expected dtype {dtype}, got {array.dtype}")
    converted = array.astype(dtype)
    if array.dtype != converted.dtype and array.size and not np.array_equal(
            converted.astype(array.dtype), array, equal_nan=array.dtype.kind == "f"):
        raise RequestError(f"{name}: expected dtype {dtype}, got {array.dtype} values "
                           f"that {dtype} cannot hold exactly")
    return converted


def input_spec(serving_info):
    """input name -> (per-sample shape, dtype) from a `serving_info.json` dict."""
    return {name: (tuple(entry["shape"][1:]), entry["dtype"])
            for name, entry in serving_info["inputs"].items()}


def rest_predict_body(inputs, signature_name=SIGNATURE_NAME):
    """The JSON-able body of a REST `predict` request in the row format.

    Args:
        inputs: input name -> array with a leading batch dimension, already in
            the export's dtypes (see `check_request`).
        signature_name: the signature to call. Defaults to "serving_default".

    Returns:
        `{"signature_name": ..., "instances": [{name: value, ...}, ...]}`.
    """
    batch = len(next(iter(inputs.values())))
    rows = [{name: _json_value(array[i]) for name, array in inputs.items()}
            for i in range(batch)]
    return {"signature_name": signature_name, "instances": rows}


def _json_value(value):
    value = np.asarray(value)
    if value.dtype.kind in "OSU":
        flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v)
                for v in value.reshape(-1)]
        return np.array(flat, dtype=object).reshape(value.shape).tolist()
    return value.tolist()


def grpc_predict_request(inputs, model_name, signature_name=SIGNATURE_NAME, version=None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for the inputs.

    Args:
        inputs: input name -> array with a leading batch dimension, already in
            the export's dtypes (see `check_request`).
        model_name: the served model's name (`--model_name`, or models.config).
        signature_name: the signature to call. Defaults to "serving_default".
        version: a version number to pin. Defaults to None (the latest).
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, array in inputs.items():
        array = np.asarray(array)
        dtype = tf.string if array.dtype.kind in "OSU" else tf.as_dtype(array.dtype)
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=dtype))
    return request


def warmup_batches(inputs, sizes=(1, 1, 8)):
    """The warm-up requests' inputs: consecutive slices of `inputs` of `sizes`.

    Sizes above the number of samples are cut down to it; with the default,
    two single-sample requests and one batch of up to 8.
    """
    n = len(next(iter(inputs.values())))
    batches, start = [], 0
    for size in sizes:
        size = min(size, n)
        if start + size > n:
            start = 0
        batches.append({k: v[start:start + size] for k, v in inputs.items()})
        start += size
    return batches


def warmup_records(batches, model_name, signature_name=SIGNATURE_NAME):
    """Serialized `PredictionLog`s, one `predict_log` request per batch."""
    records = []
    for inputs in batches:
        log = prediction_log_pb2.PredictionLog()
        log.predict_log.request.CopyFrom(
            grpc_predict_request(inputs, model_name, signature_name))
        records.append(log.SerializeToString())
    return records


def write_warmup_file(version_dir, batches, model_name):
    """Writes `assets.extra/tf_serving_warmup_requests` (a TFRecord file)."""
    path = os.path.join(version_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for record in warmup_records(batches, model_name):
            writer.write(record)
    return path


def write_request_examples(version_dir, inputs, model_name):
    """Writes one REST body and one gRPC request (text format) for `inputs`."""
    folder = os.path.join(version_dir, EXAMPLES_DIR)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, REST_EXAMPLE), "w", encoding="utf-8") as f:
        json.dump(rest_predict_body(inputs), f)
        f.write("\n")
    with open(os.path.join(folder, GRPC_EXAMPLE), "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(grpc_predict_request(inputs, model_name)))


def client_examples(version_dir, host="localhost"):
    """A `curl` command and a Python gRPC client for an export's examples."""
    with open(os.path.join(version_dir, "serving_info.json"), encoding="utf-8") as f:
        info = json.load(f)
    name = info["model_name"]
    body = os.path.join(version_dir, EXAMPLES_DIR, REST_EXAMPLE)
    grpc = os.path.join(version_dir, EXAMPLES_DIR, GRPC_EXAMPLE)
    return (
        f"# REST (port 8501)\n"
        f"curl -X POST http://{host}:8501/v1/models/{name}:predict -d @{body}\n\n"
        f"# gRPC (port 8500), Python\n"
        f"import grpc\n"
        f"from google.protobuf import text_format\n"
        f"from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc\n"
        f"request = text_format.Parse(open({grpc!r}).read(), predict_pb2.PredictRequest())\n"
        f"stub = prediction_service_pb2_grpc.PredictionServiceStub(\n"
        f"    grpc.insecure_channel('{host}:8500'))\n"
        f"response = stub.Predict(request, timeout=10.0)\n"
        f"print(response.outputs['probabilities'])\n")


def warmup_samples(dataset, index, specs, count=8):
    """The first `count` samples at `index` (a run's held-out test split) in
    the served inputs' dtypes: the export's warm-up requests. None without
    samples (the export then warms up on zeros)."""
    index = [int(i) for i in np.asarray(index)[:count]]
    if not index:
        return None
    out = {}
    for name, (_, dtype) in specs.items():
        rows = [dataset.inputs[name][i] for i in index]
        if dtype == "string":
            out[name] = np.array([r.encode("utf-8") if isinstance(r, str) else bytes(r)
                                  for r in rows], dtype=object)
        else:
            out[name] = np.stack([np.asarray(r) for r in rows]).astype(dtype)
    return out


def main(argv=None):
    """`python -m ssnas_tf.serving.requests VERSION_DIR`: prints the clients."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ssnas_tf.serving.requests VERSION_DIR", file=sys.stderr)
        return 2
    print(client_examples(argv[0]), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
