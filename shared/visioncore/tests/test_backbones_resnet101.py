"""resnet101: the deeper ResNet of architecture upgrades (R50 -> R101)."""

import torch

from visioncore.backbones import ResNet, resnet50, resnet101


def test_resnet101_has_23_blocks_in_stage_three_and_2048_channels():
    net = resnet101(device="meta")
    assert isinstance(net, ResNet) and net.out_channels == 2048 and net.stride == 32
    assert [
        len(stage)
        for stage in (
            net.timm_model.layer1,
            net.timm_model.layer2,
            net.timm_model.layer3,
            net.timm_model.layer4,
        )
    ] == [3, 4, 23, 3]
    assert net.forward_maps(torch.empty(1, 3, 64, 64, device="meta")).shape == (1, 2048, 2, 2)
    count = lambda m: sum(p.numel() for p in m.parameters())
    # 17 more bottlenecks of 1024 channels in stage three than ResNet-50
    assert count(net) - count(resnet50(device="meta")) > 15_000_000
