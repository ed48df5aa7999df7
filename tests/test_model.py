"""The TEAM module and the models: equations, structure, shapes, gradients, weights."""
import copy
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch.nn import functional as F

from preprocess.errors import SetupError
from teamnet.backbone import Branch, TemporalShift
from teamnet.checkpoint import CheckpointError
from teamnet.config import ARCHS, ARRANGEMENTS, POSITIONS
from teamnet.fusion import TEAM
from teamnet.model import TSN, CoViAR, TEAMNet, load_weights

torch.manual_seed(0)


def features(channels=(24, 8, 12), size=(5, 7), batch=4):
    """Strictly positive inputs, so that output / input is defined everywhere."""
    return [torch.rand(batch, c, *size) + 0.5 for c in channels]


def eqs_1_to_4(team, inputs):
    """Channel fusion written from the paper, with the module's own weights."""
    pooled = torch.cat([f.sum(dim=(2, 3)) / (f.shape[2] * f.shape[3]) for f in inputs], 1)  # eq 1
    z_l = torch.relu(pooled @ team.channel.squeeze.weight.T)  # eq 2
    gates = [torch.sigmoid(z_l @ fc.weight.T) for fc in team.channel.excite]  # eq 3
    return [f * g[:, :, None, None] for f, g in zip(inputs, gates)]  # eq 4


def eqs_5_to_7(team, inputs):
    """Spatial fusion written from the paper, with the module's own weights."""
    z_s = torch.cat([f.sum(dim=1, keepdim=True) / f.shape[1] for f in inputs], 1)  # eq 5
    gates = [torch.sigmoid(F.conv2d(z_s, conv.weight, padding=1)) for conv in team.spatial.convs]  # eq 6
    return [f * g for f, g in zip(inputs, gates)]  # eq 7


@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_team_equals_the_equations(arrangement):
    team = TEAM((24, 8, 12), reduction=4, arrangement=arrangement)
    inputs = features()
    if arrangement == "c":
        expected = eqs_1_to_4(team, inputs)
    elif arrangement == "s":
        expected = eqs_5_to_7(team, inputs)
    elif arrangement == "c->s":
        expected = eqs_5_to_7(team, eqs_1_to_4(team, inputs))
    elif arrangement == "s->c":
        expected = eqs_1_to_4(team, eqs_5_to_7(team, inputs))
    else:  # parallel: both gates from the same inputs, both applied
        channel, spatial = eqs_1_to_4(team, inputs), eqs_5_to_7(team, inputs)
        expected = [c * s / f for c, s, f in zip(channel, spatial, inputs)]
    for out, want, f in zip(team(*inputs), expected, inputs):
        assert out.shape == f.shape
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    assert team.channel is None if "c" not in arrangement else team.channel.squeeze.out_features == 11


@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_structure_of_the_gates(arrangement):
    team = TEAM((24, 8, 12), arrangement=arrangement)
    inputs = features()
    for out, f in zip(team(*inputs), inputs):
        ratio = out / f  # (N, C, H, W)
        by_position = ratio / ratio[:, :, :1, :1]  # positions relative to the first one
        by_channel = ratio / ratio[:, :1]  # channels relative to the first one
        # per-channel x per-position: relative position profile is the same for every channel
        torch.testing.assert_close(by_position, by_position[:, :1].expand_as(by_position))
        if arrangement == "c":  # constant over positions
            torch.testing.assert_close(by_position, torch.ones_like(by_position))
        if arrangement == "s":  # constant over channels
            torch.testing.assert_close(by_channel, torch.ones_like(by_channel))
        if "c" in arrangement and "s" in arrangement:  # neither alone
            assert by_position.std() > 1e-3 and by_channel.std() > 1e-3


@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
def test_every_modality_hears_the_others(arrangement):
    team = TEAM((24, 8, 12), arrangement=arrangement)
    inputs = features()
    before = team(*inputs)
    for changed in range(3):
        altered = [f.clone() for f in inputs]
        altered[changed] = altered[changed] * 3 + 1
        after = team(*altered)
        for other in set(range(3)) - {changed}:
            assert not torch.allclose(before[other], after[other]), (changed, other)


@pytest.mark.parametrize("channels, size", [((64, 64, 64), (56, 56)), ((2048, 512, 512), (1, 1)),
                                            ((3, 5, 7), (9, 4))])
def test_any_channels_and_size(channels, size):
    outputs = TEAM(channels)(*features(channels, size, batch=2))
    assert [tuple(o.shape) for o in outputs] == [(2, c, *size) for c in channels]


def clip(batch=2, segments=3, size=32):
    return {"iframe": torch.randn(batch, segments, 3, size, size),
            "mv": torch.randn(batch, segments, 2, size, size),
            "residual": torch.randn(batch, segments, 3, size, size)}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_backbone(arch):
    model = TEAMNet(7, iframe_arch=arch, pframe_arch="resnet18" if arch != "resnet18" else arch)
    output = model(clip())
    assert output["logits"].shape == (2, 7)
    expected = {"resnet18": 512, "resnet34": 512}.get(arch, 2048)
    assert model.branches["iframe"].features == expected
    assert [b.channels for b in model.branches.values()][1] == [64, 64, 128, 256, 512]


def test_every_subset_of_positions():
    for count in range(len(POSITIONS) + 1):
        for positions in itertools.combinations(POSITIONS, count):
            model = TEAMNet(5, "resnet18", "resnet18", positions=positions)
            assert sorted(model.teams) == sorted(positions)
            assert model(clip(batch=1, segments=2))["logits"].shape == (1, 5)


def test_gradients_reach_every_branch_and_team():
    model = TEAMNet(5, "resnet18", "resnet18", positions=POSITIONS)
    output = model(clip())
    model.loss(output, torch.tensor([0, 3])).backward()
    for name, branch in model.branches.items():
        assert branch.stages[0][0].weight.grad.abs().sum() > 0, name
        assert branch.stages[4][-1].conv2.weight.grad.abs().sum() > 0, name
    for position, team in model.teams.items():
        for parameter in team.parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, position
    assert model.branches["mv"].input_norm.weight.grad.abs().sum() > 0


def test_teamnet_sums_branch_logits_over_segment_means():
    model = TEAMNet(5, "resnet18", "resnet18").eval()
    inputs = clip()
    output = model(inputs)
    torch.testing.assert_close(output["logits"], sum(output["branches"].values()))
    as_tuple = model(tuple(inputs[m] for m in ("iframe", "mv", "residual")))["logits"]
    torch.testing.assert_close(as_tuple, output["logits"])
    # the consensus is a mean over segments: repeating every segment changes nothing
    single = clip(segments=1)
    repeated = {k: v.repeat(1, 4, 1, 1, 1) for k, v in single.items()}
    torch.testing.assert_close(model(single)["logits"], model(repeated)["logits"],
                               rtol=1e-4, atol=1e-4)


def test_baselines():
    inputs = clip()
    for modality in ("iframe", "mv", "residual"):
        tsn = TSN(4, modality=modality, arch="resnet18")
        assert list(tsn.branches) == [modality] and not tsn.teams
        assert tsn(inputs)["logits"].shape == (2, 4)
    coviar = CoViAR(4, "resnet18").eval()
    output = coviar(inputs)
    b = output["branches"]
    assert not coviar.teams
    torch.testing.assert_close(output["logits"], 2 * b["iframe"] + b["mv"] + b["residual"])
    labels = torch.tensor([1, 2])
    torch.testing.assert_close(coviar.loss(output, labels),
                               sum(F.cross_entropy(v, labels) for v in b.values()))
    with pytest.raises(ValueError, match="modality 'flow'"):
        TSN(4, modality="flow")


def test_options_have_effects():
    inputs = clip()
    assert TEAM((24, 8, 12), reduction=2).channel.squeeze.out_features == 22
    with pytest.raises(ValueError, match="arrangement"):
        TEAM((1, 2, 3), arrangement="x")
    with pytest.raises(ValueError, match="positions"):
        TEAMNet(3, positions=("res6",))
    model = TEAMNet(3, "resnet18", "resnet18", dropout=0.9).train()
    assert model.heads["mv"].dropout.p == 0.9
    assert not torch.equal(model(inputs)["logits"], model(inputs)["logits"])  # dropout active
    torch.manual_seed(1)
    plain = TEAMNet(3, "resnet18", "resnet18").eval()
    torch.manual_seed(1)
    shifted = TEAMNet(3, "resnet18", "resnet18", temporal_shift=True).eval()
    assert not torch.allclose(plain(inputs)["logits"], shifted(inputs)["logits"])


def test_temporal_shift_moves_an_eighth_each_way():
    shift = TemporalShift(torch.nn.Identity())
    shift.segments = 3
    x = torch.arange(2 * 3 * 16, dtype=torch.float32).reshape(6, 16, 1, 1)  # (N*T, C, 1, 1)
    y = shift(x).reshape(2, 3, 16)
    v = x.reshape(2, 3, 16)
    assert torch.equal(y[:, :2, :2], v[:, 1:, :2]) and not y[:, 2, :2].any()  # from t+1
    assert torch.equal(y[:, 1:, 2:4], v[:, :2, 2:4]) and not y[:, 0, 2:4].any()  # from t-1
    assert torch.equal(y[:, :, 4:], v[:, :, 4:])


def test_shifted_model_follows_the_number_of_segments():
    # training (T=8) and evaluation (T=25) differ: the shifts must follow each batch's T
    torch.manual_seed(0)
    model = TEAMNet(3, "resnet18", "resnet18", temporal_shift=True).eval()
    fresh = copy.deepcopy(model)
    inputs = clip(segments=3)
    with torch.no_grad():
        model(clip(segments=2))
        torch.testing.assert_close(model(inputs)["logits"], fresh(inputs)["logits"])
        # and T matters: as T=1 (nothing to shift) the same frames give other scores
        as_three = fresh(inputs)["logits"]
        as_one = fresh({k: v.reshape(6, 1, *v.shape[2:]) for k, v in inputs.items()})["logits"]
    assert not torch.allclose(as_three, as_one.reshape(2, 3, -1).mean(dim=1))


def test_temporal_shift_stays_within_each_crop():
    # evaluation with several crops puts them one after another along T; each must be a clip
    # of its own, or the first segment of crop 2 is shifted into the last of crop 1
    from teamnet.distributed import Context
    from teamnet.evaluate import clip_logits
    torch.manual_seed(0)
    model = TEAMNet(3, "resnet18", "resnet18", temporal_shift=True).eval()
    context = Context(0, 0, 1, torch.device("cpu"))
    crops = [{"iframe": torch.randint(0, 256, (2, 3, 32, 32, 3), dtype=torch.uint8),
              "mv": torch.randint(-20, 20, (2, 3, 32, 32, 2), dtype=torch.int8),
              "residual": torch.randint(-50, 50, (2, 3, 32, 32, 3), dtype=torch.int8)}
             for _ in range(2)]  # (N, T, H, W, C) as the loader makes them
    joined = {m: torch.cat([c[m] for c in crops], dim=1) for m in crops[0]}  # crop after crop
    with torch.no_grad():
        each = torch.stack([clip_logits(model, c, 1, context) for c in crops]).mean(dim=0)
        torch.testing.assert_close(clip_logits(model, joined, 2, context), each)
        assert not torch.allclose(clip_logits(model, joined, 1, context), each)  # the old way


def test_pretrained_weights_from_files(tmp_path):
    for arch in ("resnet18", "resnet34"):
        torch.save(getattr(torchvision.models, arch)().state_dict(), tmp_path / f"{arch}.pth")
    reference = torch.load(tmp_path / "resnet34.pth", weights_only=True)
    model = TEAMNet(5, "resnet34", "resnet18", pretrained=tmp_path)  # a folder of <arch>.pth
    iframe, mv = model.branches["iframe"], model.branches["mv"]
    torch.testing.assert_close(iframe.stages[0][0].weight, reference["conv1.weight"])
    torch.testing.assert_close(iframe.stages[3][0].conv1.weight, reference["layer3.0.conv1.weight"])
    small = torch.load(tmp_path / "resnet18.pth", weights_only=True)
    torch.testing.assert_close(mv.stages[2][1].conv2.weight, small["layer2.1.conv2.weight"])
    assert mv.stages[0][0].weight.shape == (64, 2, 7, 7)  # the MV conv1 is new
    branch = Branch("resnet18", pretrained=tmp_path / "resnet18.pth")  # a single file
    torch.testing.assert_close(branch.stages[0][0].weight, small["conv1.weight"])
    with pytest.raises(SetupError, match="does not fit resnet18"):
        Branch("resnet18", pretrained=tmp_path / "resnet34.pth")
    with pytest.raises(SetupError, match="resnet50.pth"):
        TEAMNet(5, pretrained=tmp_path)


def test_init_from_a_checkpoint_with_other_classes():
    kinetics = TEAMNet(400, "resnet18", "resnet18")
    ucf = TEAMNet(101, "resnet18", "resnet18")
    compiled_names = {f"_orig_mod.{k}": v for k, v in kinetics.state_dict().items()}
    reinitialised = load_weights(ucf, compiled_names)
    assert reinitialised == sorted(f"heads.{m}.fc.{p}" for m in ("iframe", "mv", "residual")
                                   for p in ("bias", "weight"))
    other, same = TEAMNet(400, "resnet18", "resnet18"), TEAMNet(400, "resnet18", "resnet18")
    load_weights(other, kinetics.state_dict())  # as many classes: the heads stay fresh all
    assert not torch.equal(other.heads["mv"].fc.weight, kinetics.heads["mv"].fc.weight)
    assert load_weights(same, kinetics.state_dict(), keep_heads=True) == []  # the same ones
    assert torch.equal(same.heads["mv"].fc.weight, kinetics.heads["mv"].fc.weight)
    torch.testing.assert_close(ucf.teams["res3"].spatial.convs[1].weight,
                               kinetics.teams["res3"].spatial.convs[1].weight)
    assert ucf.heads["iframe"].fc.weight.shape == (101, 512)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_weights(TEAMNet(101, "resnet34", "resnet18"), kinetics.state_dict())


@pytest.mark.slow
def test_channels_last_and_bf16():
    torch.manual_seed(0)
    model = TEAMNet(5, "resnet18", "resnet18").eval()
    inputs = clip(batch=2, segments=2, size=64)
    with torch.no_grad():
        reference = model(inputs)["logits"]
        fast = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = fast({k: v.contiguous(memory_format=torch.channels_last_3d)
                        for k, v in inputs.items()})["logits"]
        torch.testing.assert_close(low.float(), reference, rtol=0.05, atol=0.05)


def test_training_package_never_imports_the_decoder():
    code = ("import sys, pkgutil, importlib, teamnet; sys.modules['av'] = None; "
            "sys.modules['numba'] = None; [importlib.import_module('teamnet.' + m.name) "
            "for m in pkgutil.iter_modules(teamnet.__path__)]; "
            "assert 'teamnet.predict' in sys.modules and 'teamnet.train' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


@pytest.mark.parametrize("arrangement", ["c->s", "c+s", "s->c"])
def test_a_compiled_team_module_equals_the_eager_one(arrangement):
    from teamnet.compiled import compile_regions  # noqa: F401 - sets the cache
    torch.manual_seed(0)
    team = TEAM((16, 8, 8), arrangement=arrangement)
    features = [torch.randn(6, c, 7, 7) for c in (16, 8, 8)]
    with torch.no_grad():
        eager = team(*features)
        fused = torch.compile(team)(*features)  # the gates in a few fused kernels
    for a, b in zip(fused, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


COMPILE_TEAM = """
import sys, torch
from teamnet.compiled import recompiling, use_private_cache
from teamnet.fusion import TEAM
use_private_cache()
torch.manual_seed(0)
team = TEAM((8, 4, 4), arrangement="c->s")
features = [torch.randn(2, c, 5, 5) for c in (8, 4, 4)]
with torch.no_grad():
    eager, fused = team(*features), recompiling(lambda: torch.compile(team)(*features))
assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(eager, fused))
"""


def test_compiled_code_is_cached_privately_and_compiled_again_when_damaged(tmp_path):
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("TORCHINDUCTOR")}
    environment["HOME"] = str(tmp_path)
    root = Path(__file__).parent.parent
    subprocess.run([sys.executable, "-c", COMPILE_TEAM], check=True, cwd=root, env=environment)
    cache = tmp_path / ".cache" / "teamnet" / "inductor"
    files = [path for path in cache.rglob("*") if path.is_file()]
    assert files and cache.stat().st_mode & 0o777 == 0o700
    for path in files:  # every cached file replaced by junk
        path.write_bytes(b"not compiled code")
    done = subprocess.run([sys.executable, "-c", COMPILE_TEAM], cwd=root, env=environment,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"compiled code in {cache} could not be used" in done.stderr  # and said so
    fresh = done.stderr.split("compiling again into ")[1].split()[0]
    assert Path(fresh).stat().st_mode & 0o777 == 0o700  # a private folder of its own
    shutil.rmtree(fresh)


@pytest.mark.slow
def test_regional_compilation_equals_eager_and_keeps_the_names():
    # One branch, inference (TEAM modules compiled: the test above; training compiles twice
    # as many graphs, minutes on a CI machine's CPU)
    from teamnet.compiled import compile_regions, regions
    torch.manual_seed(0)
    model = TSN(5, "mv", "resnet18").eval()
    names = list(model.state_dict())
    inputs = {"mv": clip(batch=2, segments=2, size=64)["mv"]}
    eager = copy.deepcopy(model)
    compile_regions(model)
    assert list(model.state_dict()) == names  # checkpoints load either way
    assert len(list(regions(model))) == 1 + 8 + 1  # stem, 8 residual blocks, head
    with torch.no_grad():
        torch.testing.assert_close(model(inputs)["logits"], eager(inputs)["logits"],
                                   rtol=1e-4, atol=1e-4)
