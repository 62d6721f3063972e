"""Grappler passes that cost time and change no result of this package.

Grappler, TensorFlow's graph optimizer, rewrites every traced function at its
first call: 5.5 s of a one-epoch run of the default settings on 2 cores.
Two of its passes leave this package's numbers exactly as they are:

- the MLIR `tfg_optimizer` (attribute consolidation, control-flow sinking,
  dead-function removal);
- the memory optimizer (plans swapping and recomputation for accelerator
  memory).

With both off, that fell to 3.9 s, and the default run wrote byte-identical
`search_log.jsonl`, `genotype.json` and weighted F1 on seeds 0-9
(docs/performance.md). Turning off the
dependency optimizer, model pruning or common-subgraph elimination as well
changed the search's scores in the last digits, so those stay on.

`tf.config.optimizer` cannot set these two, so they go into the eager
context's function-call options, an internal TensorFlow API. Where that API
is missing, nothing changes and the passes run as before.
"""


def skip_idle_grappler_passes():
    """Turns off the two passes above for functions this thread calls from now.

    TensorFlow rebuilds the options (dropping these) when its configuration
    changes, e.g. the thread count, so `Run.configure_tensorflow` calls this
    after that, at every step.

    Returns:
        True when the options were set, False on a TensorFlow without the API.
    """
    try:
        from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
        from tensorflow.python.eager import context
        options = context.context().function_call_options
        config = config_pb2.ConfigProto.FromString(options.config_proto_serialized)
    except (ImportError, AttributeError):  # pragma: no cover - another TensorFlow
        return False
    rewrite = config.graph_options.rewrite_options
    rewrite.disable_tfg_optimizer = True
    rewrite.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
    options.config_proto_serialized = config
    return True


__all__ = ["skip_idle_grappler_passes"]
