import pytest
import torch

from models.nn.reward import confidence_fusion_probs, reward, self_critical_advantage, two_stream_probs


def test_reward_values():
    actions = torch.zeros(3, 16)
    actions[0, :4] = 1  # S = 4
    actions[1, :8] = 1  # S = 8
    actions[2, :16] = 1
    correct = torch.tensor([True, True, False])
    r = reward(correct, actions, sigma=2.0)
    assert r.tolist() == pytest.approx([1 - (4 / 16) ** 2, 1 - 0.25, -2.0])
    assert reward(torch.tensor([True]), torch.zeros(1, 16), 1.0).item() == 1.0


def test_self_critical_advantage_sign():
    adv = self_critical_advantage(torch.tensor([0.9, -1.0]), torch.tensor([0.5, 0.75]))
    assert adv.tolist() == pytest.approx([0.4, -1.75])


def test_two_stream_weighting_follows_sampled_fraction():
    hr = torch.tensor([[10.0, 0.0], [10.0, 0.0]])
    lr = torch.tensor([[0.0, 10.0], [0.0, 10.0]])
    actions = torch.zeros(2, 16)
    actions[0, :4] = 1
    actions[1, :] = 1
    out = two_stream_probs(hr, lr, actions)
    s_hr, s_lr = hr.softmax(-1), lr.softmax(-1)
    assert torch.allclose(out[0], 0.25 * s_hr[0] + 0.75 * s_lr[0])
    assert torch.allclose(out[1], s_hr[1])
    assert torch.allclose(out.sum(-1), torch.ones(2))


def test_confidence_fusion_leans_to_the_confident_stream():
    hr = torch.tensor([[8.0, 0.0]])
    lr = torch.tensor([[0.0, 0.1]])
    out = confidence_fusion_probs(hr, lr)
    assert out[0, 0] > 0.7 and torch.allclose(out.sum(-1), torch.ones(1))
