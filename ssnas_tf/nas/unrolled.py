"""DARTS's second-order architecture gradient (the unrolled step, eq. 7-8).

The architecture gradient of L_val(w*(a), a) is approximated through one
virtual weight step w' = w - xi * (dL_train/dw(w, a) + lambda * w):

    dL_val(w', a)/da - xi * d2L_train(w, a)/da dw . dL_val(w', a)/dw'

with the Hessian-vector product taken by central finite differences,

    (dL_train(w+, a)/da - dL_train(w-, a)/da) / (2 eps),
    w+- = w +- eps * dL_val(w', a)/dw',  eps = 0.01 / ||dL_val(w', a)/dw'||,

as DARTS's architect.py does. The virtual step is plain gradient descent with
the coupled L2 (DARTS adds its SGD momentum; with Adam there is no such
closed form). The weights and the batch-norm statistics are restored after.

Reference: Liu et al., "DARTS", ICLR 2019, §2.3.
"""

import keras
import tensorflow as tf

FINITE_DIFFERENCE_SCALE = 0.01  # DARTS's r in eps = r / ||v||


def _batch_statistics(model):
    """Moving means and variances, which the extra forward passes would move."""
    return [v for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)]


def _gradients(model, batch, variables):
    """d objective(batch) / d variables (tensors), zeros where unused."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(variables)
        loss, _ = model.objective_loss(batch, training=True)
    grads = tape.gradient(loss, variables)
    return loss, [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]


def _assign(weights, values):
    for w, value in zip(weights, values):
        w.assign(value)


def unrolled_arch_gradients(model, train_batch, valid_batch, xi, weight_decay=0.0):
    """The second-order gradient of the valid loss w.r.t. the arch parameters.

    Args:
        model: a built `SearchModel`.
        train_batch: the batch of the virtual weight step.
        valid_batch: the batch of the architecture objective.
        xi: the virtual step's learning rate (DARTS uses the weights' eta).
        weight_decay: coupled L2 rate in the virtual step. Defaults to 0.

    Returns:
        (list of gradients, one per arch parameter; the valid loss at w').
    """
    weights = model.trainable_weights
    w_values = [w.value for w in weights]
    arch = [v.value for v in model.arch_parameters]
    saved_w = [tf.identity(w) for w in w_values]
    saved_stats = [tf.identity(v) for v in _batch_statistics(model)]

    _, grads = _gradients(model, train_batch, w_values)
    _assign(weights, [w - xi * (g + weight_decay * w) for w, g in zip(saved_w, grads)])
    valid_loss, grads = _gradients(model, valid_batch, arch + w_values)
    d_arch, d_w = grads[:len(arch)], grads[len(arch):]

    eps = FINITE_DIFFERENCE_SCALE / tf.maximum(tf.linalg.global_norm(d_w), 1e-12)
    _assign(weights, [w + eps * v for w, v in zip(saved_w, d_w)])
    _, plus = _gradients(model, train_batch, arch)
    _assign(weights, [w - eps * v for w, v in zip(saved_w, d_w)])
    _, minus = _gradients(model, train_batch, arch)

    _assign(weights, saved_w)
    _assign(_batch_statistics(model), saved_stats)
    hessian = [(p - m) / (2.0 * eps) for p, m in zip(plus, minus)]
    return [d - xi * h for d, h in zip(d_arch, hessian)], valid_loss
