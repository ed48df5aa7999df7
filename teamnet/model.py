"""TEAM-Net (paper section 3, supplementary A) and the baselines it is compared with (Table 1).

Every model takes a dict of (N, T, C, H, W) tensors, one per modality it uses ("iframe": RGB,
"mv": 2 channels, "residual": RGB; normalised as in docs/REPRESENTATION.md section 5), runs the
N*T segments through one ResNet branch per modality, and averages each branch's logits over
the T segments (TSN's consensus). They differ in what happens between and after branches:

- TEAMNet: TEAM modules fuse the three branches after the chosen stages; the branches' logits
  are summed and one cross-entropy loss trains everything end to end.
- TSN: one branch (I-frames by default), no fusion.
- CoViAR: three branches with no fusion inside. The reference trained them separately; here
  they train as one model whose loss is the sum of the per-branch cross-entropies, which is the
  same thing (no parameter is shared, so each branch only gets its own loss's gradient). At
  inference the logits are fused with weights 2:1:1 (I:MV:R), as the reference did.
"""
from torch import nn
from torch.nn import functional as F

from .backbone import Branch, TemporalShift
from .checkpoint import CheckpointError
from .config import DEFAULT_DROPOUT, INPUTS, MODALITIES, MODELS, PIXELS, POSITIONS
from .fusion import TEAM

IN_CHANNELS = {"iframe": 3, "mv": 2, "residual": 3, "rgb": 3}
DEFAULT_POSITIONS = ("stem", "res2", "res3", "res4")  # the paper's: after conv1, res2-4


class Head(nn.Module):
    """Global pooling, dropout, linear; logits averaged over the T segments."""

    def __init__(self, features, num_classes, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x, segments):  # (N*T, C, h, w)
        logits = self.fc(self.dropout(x.mean(dim=(2, 3))))  # (N*T, K)
        return logits.reshape(-1, segments, logits.shape[-1]).mean(dim=1)  # (N, K)


class SegmentNet(nn.Module):
    """Branches per modality over T segments, optional TEAM modules after chosen stages."""

    def __init__(self, num_classes, archs, positions=(), arrangement="c->s", reduction=4,
                 dropout=0.5, temporal_shift=False, pretrained=None, fusion_weights=None,
                 joint_loss=True):
        super().__init__()
        unknown = set(positions) - set(POSITIONS)
        if unknown:
            raise ValueError(f"TEAM positions {sorted(unknown)}: choose from {POSITIONS}")
        self.modalities = tuple(m for m in INPUTS if m in archs)
        self.branches = nn.ModuleDict({
            m: Branch(archs[m], IN_CHANNELS[m], input_norm=m not in PIXELS,
                      temporal_shift=temporal_shift, pretrained=pretrained)
            for m in self.modalities})
        self.teams = nn.ModuleDict({
            position: TEAM(tuple(b.channels[stage] for b in self.branches.values()),
                           reduction, arrangement)
            for stage, position in enumerate(POSITIONS) if position in positions})
        self.heads = nn.ModuleDict({m: Head(self.branches[m].features, num_classes, dropout)
                                    for m in self.modalities})
        self.fusion_weights = fusion_weights or dict.fromkeys(self.modalities, 1.0)
        self.joint_loss = joint_loss
        self.num_classes = num_classes
        self.shifts = [m for m in self.modules() if isinstance(m, TemporalShift)]
        self.segments = None  # the T the shifts were last told

    def _tell_segments(self, segments):
        """TSM shifts along T, which a (N*T, C, H, W) batch does not show: tell them when it
        changes (training and evaluation differ), not at every call."""
        if segments != self.segments:
            for shift in self.shifts:
                shift.segments = segments
            self.segments = segments

    def forward(self, inputs, maps=False):
        """inputs: {modality: (N, T, C, H, W)}, or a tuple in the order of self.modalities.
        Returns {"logits": (N, K), "branches": {modality: (N, K)}}, and with maps=True
        "maps": {modality: (N*T, C, h, w)}, each branch's last feature map (for CAMs)."""
        if not isinstance(inputs, dict):
            inputs = dict(zip(self.modalities, inputs, strict=True))
        segments = inputs[self.modalities[0]].shape[1]
        self._tell_segments(segments)
        x = [self.branches[m].input_norm(inputs[m].flatten(0, 1)) for m in self.modalities]
        for stage, position in enumerate(POSITIONS):
            x = [self.branches[m].stages[stage](t) for m, t in zip(self.modalities, x)]
            if position in self.teams:
                x = list(self.teams[position](*x))
        branches = {m: self.heads[m](t, segments) for m, t in zip(self.modalities, x)}
        logits = sum(self.fusion_weights[m] * branches[m] for m in self.modalities)
        output = {"logits": logits, "branches": branches}
        if maps:
            output["maps"] = dict(zip(self.modalities, x))
        return output

    def gradient_groups(self):
        """The parameters whose gradient norm is clipped together: all of them where one loss
        trains everything, each branch with its head where branches train apart (CoViAR: a
        norm over all three would scale every branch's step by the others' gradients)."""
        if self.joint_loss:
            return [list(self.parameters())]
        return [[*self.branches[m].parameters(), *self.heads[m].parameters()]
                for m in self.modalities]

    def loss(self, output, labels):
        """Cross-entropy on the fused logits, or summed over branches trained independently."""
        if self.joint_loss:
            return F.cross_entropy(output["logits"], labels)
        return sum(F.cross_entropy(logits, labels) for logits in output["branches"].values())


class TEAMNet(SegmentNet):
    """ResNet-50 (I-frames) and two ResNet-18 (MV, residual) fused by TEAM modules."""

    def __init__(self, num_classes, iframe_arch="resnet50", pframe_arch="resnet18",
                 positions=DEFAULT_POSITIONS, arrangement="c->s", reduction=4, dropout=0.5,
                 temporal_shift=False, pretrained=None):
        archs = {"iframe": iframe_arch, "mv": pframe_arch, "residual": pframe_arch}
        super().__init__(num_classes, archs, positions, arrangement, reduction, dropout,
                         temporal_shift, pretrained)


class TSN(SegmentNet):
    """Temporal Segment Network on one modality (I-frames by default), ResNet-50."""

    def __init__(self, num_classes, modality="iframe", arch="resnet50", dropout=0.5,
                 temporal_shift=False, pretrained=None):
        if modality not in INPUTS:
            raise ValueError(f"modality {modality!r}: choose one of {INPUTS}")
        super().__init__(num_classes, {modality: arch}, dropout=dropout,
                         temporal_shift=temporal_shift, pretrained=pretrained)


class CoViAR(SegmentNet):
    """Three independent branches; logits fused 2:1:1 (I:MV:R); per-branch losses."""

    def __init__(self, num_classes, iframe_arch="resnet50", pframe_arch="resnet18", dropout=0.5,
                 pretrained=None, fusion_weights=(2.0, 1.0, 1.0)):
        archs = {"iframe": iframe_arch, "mv": pframe_arch, "residual": pframe_arch}
        super().__init__(num_classes, archs, dropout=dropout, pretrained=pretrained,
                         fusion_weights=dict(zip(MODALITIES, fusion_weights)), joint_loss=False)


def build_model(config, num_classes, initialise=True):
    """The model a ModelConfig describes (teamnet.config). initialise=False skips the
    pretrained weights (a checkpoint's weights are about to replace them anyway)."""
    pretrained = config.pretrained if initialise and config.pretrained != "none" else None
    dropout = DEFAULT_DROPOUT if config.dropout is None else config.dropout
    common = dict(dropout=dropout, pretrained=pretrained)
    if config.model == "teamnet":
        return TEAMNet(num_classes, config.iframe_arch, config.pframe_arch, config.team_positions,
                       config.team_arrangement, temporal_shift=config.temporal_shift, **common)
    if config.model == "tsn":
        arch = config.iframe_arch if config.modality in PIXELS else config.pframe_arch
        return TSN(num_classes, config.modality, arch, temporal_shift=config.temporal_shift,
                   **common)
    if config.model == "coviar":
        return CoViAR(num_classes, config.iframe_arch, config.pframe_arch, **common)
    raise ValueError(f"model {config.model!r}: choose one of {MODELS}")


def load_weights(model, state_dict, keep_heads=False):
    """Initialise from a checkpoint's model state, every weight but the classifier heads
    (keep_heads: theirs too, for a checkpoint of the very same classes: a head of another
    dataset's classes would map its class k onto this run's class k, whatever they are).

    Prefixes of DDP ("module.") and torch.compile ("_orig_mod.") are dropped; any other
    mismatch is an error. Returns the names of the head parameters left fresh.
    """
    own = model.state_dict()
    cleaned = {k.replace("_orig_mod.", "").removeprefix("module."): v for k, v in state_dict.items()}
    reinitialised = [] if keep_heads else sorted(k for k in cleaned if k.startswith("heads."))
    for key in reinitialised:
        del cleaned[key]
    shapes = [k for k, v in cleaned.items() if k in own and own[k].shape != v.shape]
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in cleaned.items() if k not in shapes}, strict=False)
    missing = [k for k in missing if k not in reinitialised and k not in shapes]
    if missing or unexpected or shapes:
        raise CheckpointError(f"checkpoint does not fit the model: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}, other shapes {shapes[:5]}")
    return [k for k in reinitialised if k in own]
