"""Loss callables: focal(gamma=0) and all-ones weights are cross-entropy; zero weights drop gradients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from datacarto.errors import DatacartoError
from datacarto.train.losses import cross_entropy, focal_loss, region_weights, weighted_loss


def _batch(n=16, c=3, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).requires_grad_(True)
    labels = torch.randint(0, c, (n,), generator=g)
    return logits, labels


def _value_and_grad(loss_fn, logits, labels, row_ids=None):
    x = logits.detach().clone().requires_grad_(True)
    value = loss_fn(x, labels, row_ids)
    value.backward()
    return value.detach(), x.grad.detach()


def test_cross_entropy_matches_torch():
    logits, labels = _batch()
    v, g = _value_and_grad(cross_entropy(), logits, labels)
    ref_v, ref_g = _value_and_grad(lambda x, y, _: F.cross_entropy(x, y), logits, labels)
    torch.testing.assert_close(v, ref_v.float())
    torch.testing.assert_close(g, ref_g, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("alpha", [None, 1.0, [1.0, 1.0, 1.0]])
def test_focal_with_gamma_zero_and_alpha_one_is_cross_entropy(alpha):
    logits, labels = _batch(seed=1, scale=5.0)
    labels[3] = -100  # ignored like cross_entropy's ignore_index
    v, g = _value_and_grad(focal_loss(gamma=0.0, alpha=alpha), logits, labels)
    ref_v, ref_g = _value_and_grad(lambda x, y, _: F.cross_entropy(x.float(), y), logits, labels)
    torch.testing.assert_close(v, ref_v, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g, ref_g, rtol=1e-5, atol=1e-6)
    assert torch.all(g[3] == 0)


def test_focal_matches_the_formula_and_down_weights_easy_examples():
    logits, labels = _batch(seed=2)
    gamma, alpha = 2.0, np.array([0.5, 1.0, 2.0])
    value = focal_loss(gamma, alpha)(logits, labels, None).item()
    p = torch.softmax(logits.detach(), -1).numpy()[np.arange(len(labels)), labels.numpy()]
    expected = np.mean(-alpha[labels.numpy()] * (1 - p) ** gamma * np.log(p))
    assert value == pytest.approx(expected, rel=1e-5)
    # a confidently right example loses far more of its loss than a wrong one
    x = torch.tensor([[6.0, 0.0, 0.0], [0.0, 6.0, 0.0]])
    y = torch.tensor([0, 0])
    fl = focal_loss(2.0).per_example(x, y)
    ce = cross_entropy().per_example(x, y)
    ratio = (fl / ce).numpy()
    assert ratio[0] < 1e-4 < 0.9 < ratio[1] <= 1.0


def test_focal_gradient_is_finite_for_a_certain_example():
    x = torch.tensor([[200.0, 0.0, 0.0]], requires_grad=True)
    for gamma in (0.5, 1.0, 2.0):
        x.grad = None
        focal_loss(gamma)(x, torch.tensor([0]), None).backward()
        assert torch.isfinite(x.grad).all()


def test_weighted_loss_with_ones_is_cross_entropy():
    logits, labels = _batch(seed=3)
    rows = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0)) + 5
    v, g = _value_and_grad(weighted_loss(np.ones(40)), logits, labels, rows)
    ref_v, ref_g = _value_and_grad(lambda x, y, _: F.cross_entropy(x.float(), y), logits, labels)
    torch.testing.assert_close(v, ref_v, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g, ref_g, rtol=1e-5, atol=1e-6)


def test_zero_weight_removes_an_example_by_row_id():
    logits, labels = _batch(n=8, seed=4)
    rows = torch.tensor([7, 2, 5, 0, 1, 3, 6, 4])  # batch position i holds row rows[i]
    weights = np.full(8, 2.0)
    weights[5] = 0.0  # row 5 = batch position 2
    v, g = _value_and_grad(weighted_loss(weights), logits, labels, rows)
    assert torch.all(g[2] == 0) and torch.all(g[np.r_[0:2, 3:8]].abs().sum(1) > 0)
    keep = [0, 1, 3, 4, 5, 6, 7]
    ref = F.cross_entropy(logits.detach()[keep].float(), labels[keep])
    torch.testing.assert_close(v, ref, rtol=1e-6, atol=1e-6)
    # a weighted mean: weights 3 vs 1 on two examples
    w = np.array([3.0, 1.0])
    x, y = logits.detach()[:2], labels[:2]
    per = F.cross_entropy(x.float(), y, reduction="none")
    got = weighted_loss(w)(x, y, torch.tensor([0, 1]))
    torch.testing.assert_close(got, (3 * per[0] + per[1]) / 4)


def test_all_zero_batch_gives_zero_loss_and_no_gradient():
    logits, labels = _batch(n=4, seed=5)
    v, g = _value_and_grad(weighted_loss(np.zeros(4)), logits, labels, torch.arange(4))
    assert v.item() == 0.0 and torch.all(g == 0)


def test_weighted_focal_and_row_remap():
    logits, labels = _batch(n=4, seed=6)
    base = focal_loss(1.5)
    w = np.array([0.0, 1.0, 4.0, 0.0, 2.0])
    sub = weighted_loss(w, base=base).for_rows([4, 2, 1, 0])  # subset position i = row [4, 2, 1, 0][i]
    got = sub(logits.detach(), labels, torch.arange(4))
    per = base.per_example(logits.detach(), labels)
    torch.testing.assert_close(got, (2 * per[0] + 4 * per[1] + 1 * per[2]) / 7)
    with pytest.raises(DatacartoError, match="row ids"):
        weighted_loss(w).for_rows([5])
    with pytest.raises(DatacartoError, match="row ids"):
        weighted_loss(w)(logits.detach().requires_grad_(True), labels, None)  # training without row ids
    # evaluation (no gradient, no row ids): the unweighted base loss
    with torch.no_grad():
        torch.testing.assert_close(weighted_loss(w, base=base)(logits, labels, None), base(logits, labels))


def test_region_weights():
    m = pd.DataFrame({"region": pd.Categorical(["ambiguous", "easy-to-learn", None, "hard-to-learn", "ambiguous"],
                                               categories=["easy-to-learn", "ambiguous", "hard-to-learn"])},
                     index=pd.Index([0, 1, 2, 3, 5], name="row_id"))
    w = region_weights(m, {"ambiguous": 3.0, "hard_to_learn": 0.5}, default=1.0)
    np.testing.assert_array_equal(w, [3.0, 1.0, 1.0, 0.5, 1.0, 3.0])
    # the Series form of the weights is re-indexed densely by row id
    s = pd.Series([1.0, 2.0, 3.0], index=[2, 0, 1])
    np.testing.assert_array_equal(weighted_loss(s).weights, [2.0, 3.0, 1.0])


@pytest.mark.parametrize("make, message", [
    (lambda: focal_loss(-1.0), "gamma"),
    (lambda: focal_loss(2.0, alpha=-0.5), "alpha"),
    (lambda: weighted_loss(np.array([1.0, -1.0])), ">= 0"),
    (lambda: weighted_loss(np.array([1.0, np.nan])), "finite"),
    (lambda: region_weights(pd.DataFrame({"region": ["ambiguous"]}), {"middle": 2.0}), "unknown region"),
    (lambda: region_weights(pd.DataFrame({"region": ["ambiguous"]}), {"ambiguous": -2.0}), ">= 0"),
])
def test_bad_arguments(make, message):
    with pytest.raises(DatacartoError, match=message):
        make()


def test_focal_gamma_zero_trains_like_cross_entropy(tmp_path, tiny_model_no_dropout, toy_jsonl):
    """Through a real (short) training run the recorded dynamics of focal(0) and the default CE agree."""
    from conftest import training_args
    from datacarto import load_dynamics
    from datacarto.train.baseline import train_baseline

    runs = {}
    for name, loss in (("ce", None), ("focal", focal_loss(gamma=0.0))):
        out = tmp_path / name
        train_baseline(model=tiny_model_no_dropout, train=str(toy_jsonl), output_dir=out, loss=loss,
                       training_args=training_args(out, num_train_epochs=2), save_model=False)
        runs[name] = load_dynamics(out).logits
    assert runs["ce"].shape == runs["focal"].shape
    np.testing.assert_allclose(runs["focal"], runs["ce"], rtol=1e-4, atol=1e-4)
    # and a real focal loss trains differently
    out = tmp_path / "focal2"
    train_baseline(model=tiny_model_no_dropout, train=str(toy_jsonl), output_dir=out, loss=focal_loss(gamma=2.0),
                   training_args=training_args(out, num_train_epochs=2), save_model=False)
    assert not np.allclose(load_dynamics(out).logits[:, -1], runs["ce"][:, -1], atol=1e-3)
