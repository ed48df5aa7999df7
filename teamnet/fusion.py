"""The TEAM module: multi-modal channel and spatial fusion (paper section 3, eqs 1-7).

Three modalities (I-frame, MV, residual) arrive as (N*T, C_i, H, W) feature maps of the same
spatial size and different channel counts; each leaves with the same shape, gated by what all
three see. Channel fusion says *what* matters (eqs 1-4), spatial fusion *where* (eqs 5-7).
"""
import torch
from torch import nn

from .config import ARRANGEMENTS

# The order in which each arrangement applies its fusions, one after the other ("c+s": both
# gates from the same inputs, handled apart).
ORDER = {"c": ("channel",), "s": ("spatial",), "c->s": ("channel", "spatial"),
         "s->c": ("spatial", "channel"), "c+s": ()}


class ChannelFusion(nn.Module):
    """Eqs 1-4: one squeeze over the concatenated pooled channels, one excitation per modality."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        total = sum(channels)
        hidden = max(1, total // reduction)
        self.squeeze = nn.Linear(total, hidden, bias=False)  # W_c
        self.excite = nn.ModuleList(nn.Linear(hidden, c, bias=False) for c in channels)  # W_c,i

    def gates(self, features):
        """z_c,i = sigmoid(ReLU([mean_hw F_1, F_2, F_3] W_c) W_c,i), each (N*T, C_i, 1, 1)."""
        pooled = torch.cat([f.mean(dim=(2, 3)) for f in features], dim=1)  # (N*T, C1+C2+C3)
        squeezed = torch.relu(self.squeeze(pooled))  # (N*T, (C1+C2+C3)/r)
        return [torch.sigmoid(excite(squeezed))[:, :, None, None] for excite in self.excite]

    def forward(self, features):
        return [f * gate for f, gate in zip(features, self.gates(features))]


class SpatialFusion(nn.Module):
    """Eqs 5-7: the modalities' channel means stacked into 3 maps, one 3x3 conv per modality."""

    def __init__(self, modalities=3, kernel_size=3):
        super().__init__()
        self.convs = nn.ModuleList(  # W_s,i
            nn.Conv2d(modalities, 1, kernel_size, padding=kernel_size // 2, bias=False)
            for _ in range(modalities))

    def gates(self, features):
        """z_s,i = sigmoid(W_s,i * [mean_c F_1, F_2, F_3]), each (N*T, 1, H, W)."""
        maps = torch.cat([f.mean(dim=1, keepdim=True) for f in features], dim=1)  # (N*T, 3, H, W)
        return [torch.sigmoid(conv(maps)) for conv in self.convs]

    def forward(self, features):
        return [f * gate for f, gate in zip(features, self.gates(features))]


class TEAM(nn.Module):
    """Multi-modal fusion of (I-frame, MV, residual) features; outputs replace the inputs.

    arrangement (paper Table 3): "c" channel only, "s" spatial only, "c->s" channel then
    spatial (the paper's TEAM, default), "s->c" the reverse, "c+s" parallel: both gates are
    computed from the same inputs and both multiply them, F * z_c(F) * z_s(F).
    """

    def __init__(self, channels, reduction=4, arrangement="c->s"):
        super().__init__()
        if arrangement not in ARRANGEMENTS:
            raise ValueError(f"arrangement {arrangement!r}: choose one of {ARRANGEMENTS}")
        self.arrangement = arrangement
        self.channel = ChannelFusion(channels, reduction) if "c" in arrangement else None
        self.spatial = SpatialFusion(len(channels)) if "s" in arrangement else None
        self.order = [getattr(self, name) for name in ORDER[arrangement]]

    def forward(self, f_iframe, f_mv, f_residual):
        features = [f_iframe, f_mv, f_residual]
        if self.arrangement == "c+s":
            channel_gates, spatial_gates = self.channel.gates(features), self.spatial.gates(features)
            return tuple(f * zc * zs for f, zc, zs in zip(features, channel_gates, spatial_gates))
        for fusion in self.order:
            features = fusion(features)
        return tuple(features)
