"""One modality's backbone: a torchvision ResNet cut into the five stages TEAM can follow.

Stages (paper / torchvision names): stem = conv1 + pool, res2 = layer1, res3 = layer2,
res4 = layer3, res5 = layer4. ResNets of every depth share the strides, so the three branches'
feature maps have equal spatial sizes at each stage, as TEAM's spatial fusion needs.
"""
from pathlib import Path

import torch
import torchvision
from torch import nn

from preprocess.errors import SetupError

from .config import ARCHS, IMAGENET_WEIGHTS


class TemporalShift(nn.Module):
    """TSM (supplementary B): before a residual block's first conv, 1/8 of the channels take
    the next segment's values and 1/8 the previous one's (zeros at the ends)."""

    def __init__(self, conv, fold_div=8):
        super().__init__()
        self.conv, self.fold_div = conv, fold_div
        self.segments = 1  # set by the network when T changes (training and testing differ)

    def forward(self, x):  # (N*T, C, H, W)
        t = self.segments
        x = x.reshape(-1, t, *x.shape[1:])  # (N, T, C, H, W)
        fold = x.shape[2] // self.fold_div
        shifted = torch.zeros_like(x)
        shifted[:, :-1, :fold] = x[:, 1:, :fold]  # from the future
        shifted[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]  # from the past
        shifted[:, :, 2 * fold:] = x[:, :, 2 * fold:]
        return self.conv(shifted.flatten(0, 1))


def _stage_channels(layer):
    last = layer[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


def imagenet_weights(pretrained, arch):
    """torchvision's weights enum for a name of config.IMAGENET_WEIGHTS ("imagenet", in
    configs of earlier versions, is V1), or None for a file or folder. An arch without the
    named version (V2 of ResNet-18 and -34) takes V1, its only one."""
    name = {"imagenet": IMAGENET_WEIGHTS[0]}.get(pretrained, pretrained)
    if name not in IMAGENET_WEIGHTS:
        return None
    versions = torchvision.models.get_model_weights(arch)
    return getattr(versions, name, versions.IMAGENET1K_V1)


def weights_name(pretrained, arch):
    """What a branch of arch starts from, in words: "ResNet18_Weights.IMAGENET1K_V1" or the
    file it reads."""
    weights = imagenet_weights(pretrained, arch)
    if weights is not None:
        return str(weights)
    path = Path(pretrained)
    return str(path / f"{arch}.pth" if path.is_dir() else path)


def resnet_state_dict(pretrained, arch):
    """Weights for one ResNet: torchvision's ImageNet weights (a name of
    config.IMAGENET_WEIGHTS; needs a network connection once), a torchvision-format state dict
    file, or a folder holding <arch>.pth."""
    weights = imagenet_weights(pretrained, arch)
    if weights is not None:
        try:
            return weights.get_state_dict(progress=False)
        except Exception as error:  # offline machines end here
            raise SetupError(
                f"cannot fetch torchvision's ImageNet weights for {arch} ({type(error).__name__}); "
                f"on a machine without internet pass --pretrained FILE (a torchvision state dict) "
                f"or --pretrained FOLDER (holding {arch}.pth), or --pretrained none to train from "
                "scratch") from None
    path = Path(pretrained)
    if path.is_dir():
        path = path / f"{arch}.pth"
    if not path.is_file():
        raise SetupError(f"{path}: no such weights file for {arch}")
    return torch.load(path, map_location="cpu", weights_only=True)


class Branch(nn.Module):
    """A ResNet for one modality: optional input BatchNorm, stages, pooled feature size."""

    def __init__(self, arch, in_channels=3, input_norm=False, temporal_shift=False,
                 pretrained=None):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"backbone {arch!r}: choose one of {ARCHS}")
        net = getattr(torchvision.models, arch)(weights=None)
        if pretrained:
            state = resnet_state_dict(pretrained, arch)
            if in_channels != 3:
                state = {k: v for k, v in state.items() if k != "conv1.weight"}
            missing, unexpected = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if k != "conv1.weight" or in_channels == 3]
            if missing or unexpected:
                raise SetupError(f"{pretrained} does not fit {arch}: missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}")
        if in_channels != 3:
            # A new first layer for 2-channel motion vectors, PyTorch's default initialisation
            # (Kaiming-uniform), as the reference did; ImageNet filters expect RGB.
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.arch = arch
        self.input_norm = nn.BatchNorm2d(in_channels) if input_norm else nn.Identity()
        layers = [net.layer1, net.layer2, net.layer3, net.layer4]
        if temporal_shift:
            for layer in layers:
                for block in layer:
                    block.conv1 = TemporalShift(block.conv1)
        self.stages = nn.ModuleList([nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
                                     *layers])
        self.channels = [net.conv1.out_channels, *(_stage_channels(layer) for layer in layers)]
        self.features = self.channels[-1]
