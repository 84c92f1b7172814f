"""Training: temperature, promotion, clamps, diversification, checkpoints (spec §3, §3.1, §12.4, §12.7)."""

from __future__ import annotations

import math

import pytest
import torch

from eolabels.epitome.figures import (
    plot_epitome_means,
    plot_posterior_usage,
    plot_promotion,
    posterior_usage,
)
from eolabels.epitome.model import GaussianEpitome, log_joint
from eolabels.epitome.train import (
    EpitomeTrainer,
    TrainConfig,
    clamp_epitome_,
    patch_temperature,
    position_posterior_rows,
    promoted_mixture_loss,
    update_promotion_counter,
    worst_modelled,
)


def test_temperature_is_w_over_11_squared():
    assert patch_temperature(11) == 1.0
    assert patch_temperature(33) == pytest.approx(9.0)
    assert patch_temperature(7, reference=7) == 1.0


def test_promotion_counter_hand_case():
    counter = torch.zeros(2, 2)
    # Two layers, one patch: the increment is the mean over the L·B = 2 rows.
    rows = torch.tensor([[[[0.5, 0.5], [0.0, 0.0]]], [[[0.5, 0.0], [0.5, 0.0]]]])
    counter, mask, reset = update_promotion_counter(counter, rows, threshold=0.3, reset_fraction=0.95)
    assert torch.allclose(counter, torch.tensor([[0.5, 0.25], [0.25, 0.0]]))
    assert mask.tolist() == [[True, False], [False, False]] and not reset
    counter, mask, reset = update_promotion_counter(counter, rows, threshold=0.3, reset_fraction=0.95)
    assert torch.allclose(counter, torch.tensor([[1.0, 0.5], [0.5, 0.0]]))
    assert mask.tolist() == [[True, True], [True, False]] and not reset  # 75 % masked
    counter, mask, reset = update_promotion_counter(counter, rows, threshold=0.3, reset_fraction=0.7)
    assert reset and not mask.any() and torch.all(counter == 0)


def test_promoted_loss_removes_masked_positions():
    energy = torch.log(torch.tensor([[[[0.2, 0.3], [0.1, 0.4]]]], dtype=torch.float64))
    mask = torch.tensor([[True, False], [False, True]])
    loss = promoted_mixture_loss(energy, mask)
    assert float(loss) == pytest.approx(-math.log(0.3 + 0.1), rel=1e-9)


def test_prior_gradient_at_masked_positions_is_prior_over_temperature():
    """Spec §3.1: a masked position's logit gets gradient p(s)/T; pixels covered only by masked
    windows get no gradient.  (Checklist §12.4 says "~0" for π; §3.1, verified on the authors'
    model, is what is implemented and tested here.)"""
    g = torch.Generator().manual_seed(0)
    epitome = GaussianEpitome(
        torch.rand(1, 2, 4, 4, generator=g, dtype=torch.float64),
        torch.full((1, 2, 4, 4), 5.0, dtype=torch.float64),
        torch.randn(1, 4, 4, generator=g, dtype=torch.float64),
    )
    temperature = 2.0
    pixels = torch.rand(3, 2, 1, 1, generator=g, dtype=torch.float64)
    energy = log_joint(epitome.fields(1), pixels) / temperature
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[1, 2] = mask[3, 0] = True
    promoted_mixture_loss(energy, mask).backward()
    prior = torch.softmax(epitome.prior_logits.detach().flatten(), 0).view(4, 4)
    assert torch.allclose(epitome.prior_logits.grad[0][mask], prior[mask] / temperature, rtol=1e-6)
    assert torch.all(epitome.mean.grad[0][:, mask] == 0) and torch.all(epitome.ivar.grad[0][:, mask] == 0)
    assert torch.all(epitome.mean.grad[0][:, ~mask].abs().sum(0) > 0)


def test_clamps_centre_then_clip():
    epitome = GaussianEpitome(
        torch.zeros(1, 1, 1, 3), torch.tensor([[[[0.5, 50.0, 500.0]]]]), torch.tensor([[[1.0, 2.0, 3.0]]])
    )
    clamp_epitome_(epitome)
    assert epitome.ivar.detach().flatten().tolist() == [1.0, 50.0, 100.0]
    assert epitome.prior_logits.detach().flatten().tolist() == [-1.0, 0.0, 1.0]
    epitome.prior_logits.data = torch.tensor([[[0.0, 0.0, 15.0]]])
    clamp_epitome_(epitome)
    assert epitome.prior_logits.detach().flatten().tolist() == [-4.0, -4.0, 4.0]  # centred: −5, −5, 10


def test_worst_modelled_keeps_lowest_likelihood_quarter():
    energy = torch.zeros(1, 8, 2, 2)
    energy[0, :, 0, 0] = torch.tensor([5.0, -3.0, 2.0, -7.0, 0.0, 1.0, 4.0, 3.0])
    kept = worst_modelled(energy, 0.25)
    assert sorted(kept[0, :, 0, 0].tolist()) == [-7.0, -3.0]


def small_problem(seed=0, **config):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, 24, 24, generator=g)
    # A sharp epitome (λ = 100 on a copy of the image) makes posteriors peaky, so promotion bites.
    epitome = GaussianEpitome.from_image(image[:, :12, :12].clone())
    defaults = dict(patch_sizes=(3, 5), batch_size=8, seed=seed)
    defaults.update(config)
    return EpitomeTrainer(epitome, [image], TrainConfig(**defaults))


def test_counter_monotone_between_resets_and_clamps_hold():
    trainer = small_problem()
    previous = trainer.counter.clone()
    saw_growth = False
    for _ in range(12):
        trainer.step()
        reset = trainer.history.resets and trainer.history.resets[-1] == trainer.iteration
        if reset:
            assert torch.all(trainer.counter == 0)
        else:
            assert torch.all(trainer.counter >= previous)
            saw_growth = saw_growth or bool((trainer.counter > previous).any())
        assert trainer.history.masked_fraction[-1] <= 0.95
        ivar = trainer.epitome.ivar.detach()
        prior = trainer.epitome.prior_logits.detach()
        assert float(ivar.min()) >= 1 and float(ivar.max()) <= 100
        assert float(prior.abs().max()) <= 4
        previous = trainer.counter.clone()
    assert saw_growth
    assert any(0 < f for f in trainer.history.masked_fraction)


def test_diversified_multilayer_training_runs():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 20, 20, generator=g)
    epitome = GaussianEpitome.initialise(2, 2, 10, generator=g)
    config = TrainConfig(patch_sizes=(3,), batch_size=8, diversify=True)
    trainer = EpitomeTrainer(epitome, [image, image[:, :15]], config)
    losses = [trainer.step() for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tmp_path):
    straight = small_problem(seed=4)
    straight.train(6, progress=False)

    first = small_problem(seed=4)
    first.train(3, checkpoint_path=tmp_path / "epitome.pt", progress=False)
    resumed = small_problem(seed=4)
    resumed.load_checkpoint(tmp_path / "epitome.pt")
    assert resumed.iteration == 3
    resumed.train(6, progress=False)

    for a, b in zip(straight.epitome.parameters(), resumed.epitome.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(straight.counter, resumed.counter)
    assert straight.history == resumed.history
    assert not (tmp_path / "epitome.pt.tmp").exists()

    other = small_problem(seed=5)
    with pytest.raises(ValueError, match="different TrainConfig"):
        other.load_checkpoint(tmp_path / "epitome.pt")


def test_rejects_images_smaller_than_patches():
    epitome = GaussianEpitome.initialise(1, 3, 8)
    with pytest.raises(ValueError, match="smaller than the largest patch"):
        EpitomeTrainer(epitome, [torch.rand(3, 6, 6)], TrainConfig(patch_sizes=(7,)))
    with pytest.raises(ValueError, match="odd"):
        TrainConfig(patch_sizes=(4,))


def test_figures_render(tmp_path):
    trainer = small_problem()
    trainer.train(4, progress=False)
    patches = torch.rand(5, 3, 3, 3)
    usage = posterior_usage(trainer.epitome, patches)
    assert usage.shape == (1, 12, 12)
    assert float(usage.sum()) == pytest.approx(5.0, rel=1e-5)
    for name, fig in {
        "means": plot_epitome_means(trainer.epitome),
        "usage": plot_posterior_usage(usage),
        "promotion": plot_promotion(trainer.history),
    }.items():
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 0


def test_position_posterior_rows_normalise_per_layer():
    rows = position_posterior_rows(torch.randn(2, 3, 4, 5))
    assert torch.allclose(rows.sum(dim=(2, 3)), torch.ones(2, 3))
