"""NT-Xent across replicas: on 2 logical CPU devices under MirroredStrategy, the
loss and gradients equal single-device `nt_xent` on the same global batch.

Logical devices must be configured before TensorFlow's runtime starts, so the
check runs in a fresh process.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ssnas_tf.ssl.distributed import (cross_replica_concat, global_nt_xent,
                                          scale_for_replicas)
    from ssnas_tf.ssl.losses import nt_xent

    rng = np.random.default_rng(0)
    n, d, h, tau = 6, 5, 4, 0.2
    x1, x2 = (rng.normal(size=(2 * n, d)).astype("float32") for _ in range(2))
    w0 = rng.normal(size=(d, h)).astype("float32")

    w = tf.Variable(w0)
    with tf.GradientTape() as tape:
        single = nt_xent(x1 @ w, x2 @ w, tau)
    single_grad = tape.gradient(single, w)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        wm = tf.Variable(w0)

    def shard(x):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: x[ctx.replica_id_in_sync_group * n:
                          (ctx.replica_id_in_sync_group + 1) * n])

    def step(loss_fn):
        @tf.function
        def replica_step(a, b):
            with tf.GradientTape() as tape:
                loss = scale_for_replicas(loss_fn(a @ wm, b @ wm, tau))
            return loss, tape.gradient(loss, wm), cross_replica_concat(a)
        loss, grad, gathered = strategy.run(replica_step, (shard(x1), shard(x2)))
        total = lambda v: strategy.reduce("SUM", v, axis=None).numpy()
        return (float(total(loss)), total(grad),
                [g.numpy() for g in strategy.experimental_local_results(gathered)])

    loss, grad, gathered = step(global_nt_xent)
    local_loss, local_grad, _ = step(nt_xent)  # per-replica negatives only
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "single": float(single), "mirrored": loss, "local_only": local_loss,
        "grad_diff": float(np.abs(grad - single_grad.numpy()).max()),
        "grad_scale": float(np.abs(single_grad.numpy()).max()),
        "local_grad_diff": float(np.abs(local_grad - single_grad.numpy()).max()),
        "gather_ok": all(np.array_equal(g, x1) for g in gathered)}))
""")


def test_mirrored_nt_xent_equals_single_device_loss_and_gradients():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    r = json.loads(line[len("RESULT "):])
    assert r["replicas"] == 2
    assert r["gather_ok"], "cross_replica_concat must give the global batch in replica order"
    np.testing.assert_allclose(r["mirrored"], r["single"], rtol=1e-5)
    assert r["grad_diff"] <= 1e-5 * max(1.0, r["grad_scale"]), r
    # The control: with per-replica negatives only, the loss is another number.
    assert abs(r["local_only"] - r["single"]) > 1e-3, r
    assert r["local_grad_diff"] > 1e-4, r
