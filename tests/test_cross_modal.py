"""Cross-modal view pairs (`ssl.augment.cross_modal`) and the search's use of them."""

import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.data import load_dataset
from ssnas_tf.ssl.augment import AugmentConfig, two_views
from ssnas_tf.ssl.augment.cross_modal import split_sides, split_views
from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.workflow.run import Run
from ssnas_tf.workflow.steps import DartsSearch

SEED = tf.constant([3, 4], tf.int64)


@pytest.mark.parametrize("modalities", [2, 3, 6])
def test_split_pairs_keep_complementary_non_empty_subsets(modalities):
    keep1, keep2 = (k.numpy() for k in split_sides(400, modalities, SEED, 1.0))
    assert (keep1 ^ keep2).all()  # every modality on exactly one side
    assert keep1.any(axis=1).all() and keep2.any(axis=1).all()
    # Every modality lands on each side for some samples (not a fixed split).
    assert keep1.any(axis=0).all() and keep2.any(axis=0).all()


def test_split_share_follows_the_probability_and_the_seed():
    keep1, keep2 = (k.numpy() for k in split_sides(4000, 2, SEED, 0.5))
    split = ~(keep1 & keep2).all(axis=1)
    assert 0.45 < split.mean() < 0.55
    assert (keep1 | keep2).all()  # an unsplit pair keeps everything in both views
    again = split_sides(4000, 2, SEED, 0.5)[0].numpy()
    other = split_sides(4000, 2, tf.constant([3, 5], tf.int64), 0.5)[0].numpy()
    assert (again == keep1).all() and (other != keep1).any()
    nothing = split_sides(50, 3, SEED, 0.0)
    assert all(k.numpy().all() for k in nothing)


def test_blanked_modalities_are_zeros_padding_and_empty_text():
    n = 64
    view = {"image": tf.ones([n, 4, 4, 1]), "ids": tf.fill([n, 5], 7),
            "text": tf.fill([n], "a b")}
    one, two = split_views(view, view, 1.0, SEED)
    for name, blank in (("image", 0.0), ("ids", 0), ("text", b"")):
        rows1 = one[name].numpy().reshape(n, -1)[:, 0]
        rows2 = two[name].numpy().reshape(n, -1)[:, 0]
        # Blanked in exactly one of the two views, for every sample.
        assert ((rows1 == blank) ^ (rows2 == blank)).all()
    assert one["ids"].dtype == tf.int32 and one["text"].dtype == tf.string


def test_one_modality_or_probability_zero_leaves_views_alone():
    view = {"image": tf.ones([8, 4, 4, 1])}
    one, two = split_views(view, view, 1.0, SEED)
    assert np.array_equal(one["image"], view["image"])
    both = {"a": tf.ones([8, 3]), "b": tf.ones([8, 2])}
    one, two = split_views(both, both, 0.0, SEED)
    assert all(np.array_equal(one[k], both[k]) for k in both)


def test_two_views_applies_the_config_share():
    features = {"a": tf.random.stateless_uniform([256, 3], (1, 2)) + 1.0,
                "b": tf.random.stateless_uniform([256, 2], (1, 3)) + 1.0}
    kinds = {"a": "vector", "b": "vector"}
    plain = two_views(features, kinds, AugmentConfig(), seed=5)
    crossed = two_views(features, kinds, AugmentConfig(cross_modal=1.0), seed=5)
    for view in plain:
        assert all((np.abs(view[k].numpy()).sum(axis=1) > 0).all() for k in kinds)
    for view, other in zip(crossed, plain):  # same augmentation, then blanked
        for k in kinds:
            kept = np.abs(view[k].numpy()).sum(axis=1) > 0
            assert 0 < kept.mean() < 1
            assert np.allclose(view[k].numpy()[kept], other[k].numpy()[kept])


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_bad_shares_are_refused(bad):
    with pytest.raises(ValueError, match="cross_modal"):
        AugmentConfig(cross_modal=bad)
    with pytest.raises(ValueError, match="--search-cross-modal"):
        RunConfig(search_cross_modal=bad)


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_ssl_search_batches_follow_search_cross_modal(tmp_path, share):
    run = Run(str(tmp_path / "run"), RunConfig(search_cross_modal=share, batch_size=64),
              verbose=0, dataset=load_dataset("mfeat"))
    run.start()
    pipeline = DartsSearch()._search_data(run, run._begin("search"))[0]
    view1, view2 = next(iter(pipeline(run.splits.search_train, 0)))
    blank1 = np.stack([np.abs(view1[k].numpy()).reshape(64, -1).sum(axis=1) == 0
                       for k in view1], axis=1)
    blank2 = np.stack([np.abs(view2[k].numpy()).reshape(64, -1).sum(axis=1) == 0
                       for k in view2], axis=1)
    if share:
        assert (blank1 ^ blank2).all()
        assert (~blank1).any(axis=1).all() and (~blank2).any(axis=1).all()
    else:
        assert not blank1.any() and not blank2.any()
    # Pretraining keeps SimCLR's views: the share is the search's alone.
    assert run.augment_config.cross_modal == 0


class _Captured(Exception):
    pass


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_pretraining_views_follow_pretrain_cross_modal(tmp_path_factory, tmp_path,
                                                       monkeypatch, share):
    import dataclasses
    from ssnas_tf.workflow import steps
    from test_pipeline import TINY, copy_run, finished_tiny_run
    source, _ = finished_tiny_run(tmp_path_factory)
    directory = copy_run(source, tmp_path / "run")
    seen = []

    def capture(dataset, index, batch_size, augment_config, *args, **kwargs):
        seen.append(augment_config)
        raise _Captured

    monkeypatch.setattr(steps, "view_pairs", capture)
    run = Run(directory, dataclasses.replace(TINY, pretrain_cross_modal=share), verbose=0)
    with pytest.raises(_Captured):
        steps.ContrastivePretrain()(run)
    assert [a.cross_modal for a in seen] == [share]
    assert seen[0].overrides == run.augment_config.overrides  # otherwise the run's
