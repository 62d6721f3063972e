"""NT-Xent across replicas: every replica's anchors see the global batch's negatives.

Under `tf.distribute` each replica holds N/R of a global batch of N pairs. The
plain `nt_xent` on a replica would contrast its anchors with its own 2N/R - 2
negatives only, so the loss (and the learned representation) would depend on
the number of devices. Here each replica gathers z1 and z2 from all replicas
(an all-reduce of a zero-padded copy, which has a gradient) and scores its own
anchors against the whole global batch; its positives sit at its rows of the
gathered batch, offset by replica id x local batch size.

Each replica returns the mean over its own 2N/R anchors. A train step divides
it by the number of replicas before taking gradients (`scale_for_replicas`):
the optimizer sums gradients over replicas, which then gives the gradient of
the mean over all 2N anchors, the same as `nt_xent` on one device.

Reference: Chen et al., SimCLR (ICML 2020); the TF2 code's
`objective.add_contrastive_loss` with `tpu_cross_replica_concat`.
"""

import tensorflow as tf

from ssnas_tf.ssl.losses import nt_xent

_LARGE = 1e9  # masks self-similarity out of the softmax (as nt_xent)


def num_replicas():
    """Replicas in sync in the current replica context (1 outside tf.distribute)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def cross_replica_concat(tensor, context=None):
    """Concatenates `tensor` of every replica along axis 0, in replica order.

    Args:
        tensor: this replica's (n, ...) tensor; n must be the same on all.
        context: a `tf.distribute.ReplicaContext`. Defaults to the current one.

    Returns:
        The (R * n, ...) tensor, identical on every replica; `tensor` itself
        with one replica.
    """
    context = context or tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensor
    replicas = context.num_replicas_in_sync
    replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
    shape = tf.shape(tensor)
    # Zeros except this replica's slot; the sum over replicas fills every slot.
    padded = tf.scatter_nd([[replica_id]], tensor[tf.newaxis],
                           tf.concat([[replicas], shape], axis=0))
    gathered = context.all_reduce(tf.distribute.ReduceOp.SUM, padded)
    return tf.reshape(gathered, tf.concat([[-1], shape[1:]], axis=0))


def _anchor_losses(anchors, positives_all, same_view_all, labels, temperature):
    """Cross-entropy of each anchor against [other view | same view] of all rows."""
    replicas_n = tf.shape(positives_all)[0]
    mask = tf.one_hot(labels, replicas_n, dtype=anchors.dtype)
    logits_ab = tf.matmul(anchors, positives_all, transpose_b=True) / temperature
    logits_aa = tf.matmul(anchors, same_view_all, transpose_b=True) / temperature
    logits = tf.concat([logits_ab, logits_aa - _LARGE * mask], axis=1)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)


def global_nt_xent(z1, z2, temperature=0.1):
    """NT-Xent of this replica's anchors against the global batch.

    Outside `tf.distribute` (or with one replica) this is `nt_xent(z1, z2)`.

    Args:
        z1: this replica's (n, D) projections of the first views.
        z2: its (n, D) projections of the second views (row i pairs with z1's).
        temperature: tau. Defaults to 0.1.

    Returns:
        The mean loss over this replica's 2n anchors (a scalar); the mean of
        these over replicas equals `nt_xent` of the global batch.

    Example:
    >>> loss = strategy.run(lambda a, b: global_nt_xent(a, b, 0.2), (z1, z2))
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return nt_xent(z1, z2, temperature)
    z1 = tf.math.l2_normalize(tf.cast(z1, tf.float32), axis=-1, epsilon=1e-24)
    z2 = tf.math.l2_normalize(tf.cast(z2, tf.float32), axis=-1, epsilon=1e-24)
    z1_all = cross_replica_concat(z1, context)
    z2_all = cross_replica_concat(z2, context)
    n = tf.shape(z1)[0]
    replica_id = tf.cast(context.replica_id_in_sync_group, tf.int32)
    labels = tf.range(n) + replica_id * n
    loss_a = _anchor_losses(z1, z2_all, z1_all, labels, temperature)
    loss_b = _anchor_losses(z2, z1_all, z2_all, labels, temperature)
    return tf.reduce_mean(tf.concat([loss_a, loss_b], axis=0))


def scale_for_replicas(loss):
    """`loss` / replicas in sync: the loss to differentiate in a custom train
    step, since the optimizer sums the replicas' gradients (as Keras's own
    losses do under tf.distribute)."""
    replicas = num_replicas()
    return loss if replicas == 1 else loss * (1.0 / replicas)


def scale_gradients(grads):
    """Gradients / replicas in sync (None kept): for train steps whose
    gradients include terms added per replica (e.g. coupled L2), which the
    optimizer's sum over replicas would otherwise count R times."""
    replicas = num_replicas()
    if replicas == 1:
        return grads
    return [None if g is None else g * (1.0 / replicas) for g in grads]


__all__ = ["cross_replica_concat", "global_nt_xent", "num_replicas", "scale_for_replicas",
           "scale_gradients"]
