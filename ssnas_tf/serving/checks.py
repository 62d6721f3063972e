"""Input checks at the serving boundary, inside the exported graph.

The serving signature declares each input's dtype and shape, but neither TF
Serving nor a loaded SavedModel enforces the shape: a `kar` of width 65 reaches
the model and fails deep inside it (`Incompatible shapes: [3,65] vs. [1,64]
... kar_normalize_1/Sub`), inputs with different batch sizes fail in a fusion
op, and NaN or inf values flow through to NaN probabilities with no error at
all. `check_inputs` runs before the model and turns each of these into one
`InvalidArgumentError` whose message names the input, what was expected and
what came:

```
kar: expected shape (batch, 64), got (3, 65)
fou: batch size 2, but kar has batch size 3; all inputs need the same batch size
kar: 3 non-finite values (NaN or inf) in rows [0, 1, 2]
```

The checks run in that order (shapes, then batch sizes, then values), each
group only once the previous one passed, so a message always describes the
first problem. Only core TensorFlow ops are used (`Assert`, `If`, string
formatting), so TF Serving loads the graph. A wrong dtype never reaches the
graph: the signature's TensorSpec refuses it when the SavedModel is called
from Python, and TF Serving refuses it before running the session. The
message strings are built only when a check fails (inside a `tf.cond`); a
passing batch costs the comparisons and one `is_finite` reduction per float
input.
"""

import tensorflow as tf

# Rows listed in a non-finite message; the rest are counted.
SHOWN_ROWS = 10


def expected_shape(spec):
    """The per-request shape a signature input expects, as text: `(batch, 64)`."""
    dims = ["batch"] + ["any" if d is None else str(d) for d in spec.shape.as_list()[1:]]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def check_inputs(inputs, signature, nan_inputs=()):
    """Returns `inputs` unchanged, once the graph has checked them.

    Args:
        inputs: input name -> tensor, as the serving function receives them.
        signature: input name -> `tf.TensorSpec` with batch dimension None.
        nan_inputs: float inputs where NaN is allowed (it means a missing
            value, e.g. a numeric table column); inf is still refused.
            Defaults to ().

    Returns:
        The same tensors, behind control dependencies on the checks, so the
        model runs only on inputs that passed.
    """
    names = list(signature)
    # Grappler folds shape facts it knows statically: Size(Shape(x)) of an
    # input declared (None, 64) becomes 2, so a rank-3 request would pass.
    # The checks look at the inputs through PlaceholderWithDefault of unknown
    # shape (an identity at run time), which shape inference cannot see through.
    seen = {name: tf.raw_ops.PlaceholderWithDefault(
        input=inputs[name], shape=tf.TensorShape(None)) for name in names}
    shape_checks = [_check_shape(name, seen[name], signature[name]) for name in names]
    with tf.control_dependencies(shape_checks):
        batch_checks = [_check_batch(name, seen[name], names[0], seen[names[0]])
                        for name in names[1:]]
    with tf.control_dependencies(shape_checks + batch_checks):
        value_checks = [_check_finite(name, seen[name], name in nan_inputs)
                        for name in names if seen[name].dtype.is_floating]
    with tf.control_dependencies(shape_checks + batch_checks + value_checks):
        return {name: tf.identity(inputs[name]) for name in names}


def _assert(ok, message_fn):
    """An Assert whose message is formatted only when `ok` is False."""
    message = tf.cond(ok, lambda: tf.constant(""), message_fn)
    return tf.debugging.Assert(ok, [message])


def _shape_text(shape):
    text = tf.strings.reduce_join(tf.strings.as_string(shape), separator=", ")
    comma = tf.where(tf.size(shape) == 1, ",", "")
    return tf.strings.join(["(", text, comma, ")"])


def _check_shape(name, x, spec):
    shape = tf.shape(x, out_type=tf.int64)
    want = spec.shape.as_list()[1:]
    ok = tf.equal(tf.size(shape), len(want) + 1)
    known = [i + 1 for i, d in enumerate(want) if d is not None]
    if known:
        # Pad so that the gather is valid whatever rank came.
        padded = tf.concat([shape, tf.fill([len(want) + 1], tf.constant(-1, tf.int64))], 0)
        got = tf.gather(padded, known)
        ok = tf.logical_and(ok, tf.reduce_all(
            tf.equal(got, tf.constant([want[i - 1] for i in known], tf.int64))))
    expected = expected_shape(spec)
    return _assert(ok, lambda: tf.strings.join(
        [f"{name}: expected shape {expected}, got ", _shape_text(shape)]))


def _check_batch(name, x, first_name, first):
    size, first_size = tf.shape(x)[0], tf.shape(first)[0]
    return _assert(tf.equal(size, first_size), lambda: tf.strings.format(
        name + ": batch size {}, but " + first_name + " has batch size {}; all "
        "inputs need the same batch size", (size, first_size)))


def _check_finite(name, x, nan_allowed=False):
    finite = tf.math.is_finite(x)
    if nan_allowed:
        finite = tf.logical_or(finite, tf.math.is_nan(x))
    ok = tf.reduce_all(finite)

    def message():
        bad = tf.logical_not(tf.reshape(finite, [tf.shape(x)[0], -1]))
        count = tf.reduce_sum(tf.cast(bad, tf.int64))
        rows = tf.where(tf.reduce_any(bad, axis=1))[:, 0]
        shown = tf.strings.reduce_join(tf.strings.as_string(rows[:SHOWN_ROWS]),
                                       separator=", ")
        more = tf.size(rows, out_type=tf.int64) - SHOWN_ROWS
        tail = tf.cond(more > 0,
                       lambda: tf.strings.format(", ... ({} more rows)", more),
                       lambda: tf.constant(""))
        return tf.strings.join([
            tf.strings.format(name + (": {} infinite values in rows [" if nan_allowed
                                      else ": {} non-finite values (NaN or inf) in rows ["),
                              count),
            shown, tail, "]"])

    return _assert(ok, message)


__all__ = ["check_inputs", "expected_shape", "SHOWN_ROWS"]
