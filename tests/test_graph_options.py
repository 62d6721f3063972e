"""The two grappler passes `skip_idle_grappler_passes` turns off are off for
the functions called afterwards, and a traced function's numbers stay the same."""

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context

from ssnas_tf.graph_options import skip_idle_grappler_passes


def _rewrite_options():
    options = context.context().function_call_options
    config = config_pb2.ConfigProto.FromString(options.config_proto_serialized)
    return config.graph_options.rewrite_options


def _network(x, w):
    # A matmul chain with a branch and a loop: graphs the two passes rewrite.
    def body(i, h):
        h = tf.nn.relu(tf.matmul(h, w))
        return i + 1, tf.cond(tf.reduce_sum(h) > 0, lambda: h * 0.5, lambda: h - 1.0)
    return tf.while_loop(lambda i, h: i < 3, body, (0, x))[1]


def test_the_passes_are_off_for_later_calls_and_results_are_unchanged():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(8, 16)), tf.float32)
    w = tf.constant(rng.normal(size=(16, 16)) / 4, tf.float32)
    before = tf.function(_network)(x, w).numpy()
    assert skip_idle_grappler_passes()
    rewrite = _rewrite_options()
    assert rewrite.disable_tfg_optimizer
    assert rewrite.memory_optimization == rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
    after = tf.function(_network)(x, w).numpy()
    np.testing.assert_array_equal(before, after)
