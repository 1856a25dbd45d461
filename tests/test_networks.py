import pytest
import torch

from models.nn.networks import ResNetConfig, build_resnet


@pytest.mark.parametrize("bands,size,stride", [(1, 8, 1), (4, 32, 1), (13, 64, 2)])
def test_resnet_takes_any_band_count_and_size(bands, size, stride):
    net = build_resnet(ResNetConfig(bands, 16, depth=8, width=8, stem_stride=stride))
    assert net(torch.randn(3, bands, size, size)).shape == (3, 16)


def test_depth_rule_and_block_count():
    with pytest.raises(ValueError, match="6n"):
        ResNetConfig(3, 10, depth=10)
    net = build_resnet({"in_channels": 3, "num_outputs": 10, "depth": 20, "width": 16})
    assert len(net.layers) == 9  # three stages of n = 3 blocks
    assert net.head.in_features == 64
