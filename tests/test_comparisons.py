"""What reproducing the paper's comparisons needs (docs/REPRESENTATION.md section 10): the
reference's crops and test views, its initial weights and learning rates, CoViAR's own recipe,
an RGB TSN on decoded frames of any position, and per-video scores fused late."""
import colorsys
import dataclasses
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import motion_dataset
import reference
from cli import main
from preprocess.errors import SettingsError
from preprocess.store import ClipReader, load_index
from teamnet.backbone import imagenet_weights
from teamnet.config import (DataConfig, ModelConfig, OptimConfig, TrainConfig, parse_pretrained,
                            with_recipe)
from teamnet.data import ClipDataset, check_official_view, decoded_frames
from teamnet.distributed import Context
from teamnet.model import TSN, CoViAR, TEAMNet
from teamnet.sampling import official_test_clip, sample_clip
from teamnet.scores import ScoreFileError, fuse
from teamnet.splits import SplitError
from teamnet.train import _loader as training_loader
from teamnet.train import check_batch_split, clip_gradients, make_optimizer, parameter_groups
from teamnet.transforms import (CROP_PLACES, Crop, apply_crop, eval_crops, hls_to_rgb,
                                jitter_colours, rgb_to_hls, train_crop, view_size)

SMALL = ["--pretrained", "none", "--iframe-arch", "resnet18", "--num-segments", "2",
         "--input-size", "32", "--batch-size", "8", "--workers", "0", "--val-fraction", "0"]


# --- crops and views --------------------------------------------------------------------------

def test_training_crops_take_the_reference_places_and_scales():
    rng = np.random.default_rng(0)
    crops = [train_crop(256, 340, rng) for _ in range(2000)]
    # 224 x 224 crops of a 340 x 256 frame: the free room 116 x 32 in quarters (29 and 8 px)
    assert {(c.x, c.y) for c in crops if (c.width, c.height) == (224, 224)} == {
        (29 * i, 8 * j) for i, j in CROP_PLACES}
    assert len(CROP_PLACES) == len(set(CROP_PLACES)) == 13
    mv_only = [train_crop(256, 340, rng, scales=(1, .875, .75)) for _ in range(300)]
    assert {c.width for c in mv_only} == {256, 224, 192}
    whole = {train_crop(64, 64, rng, flip=False, scales=(1,)) for _ in range(20)}
    assert whole == {Crop(0, 0, 64, 64)}


def test_crop_scales_follow_the_modalities_unless_given(motion):
    data, train_list, _ = motion
    entries = [(v["id"], v["label"]) for v in load_index(data)["videos"][:2]]
    scales = lambda modalities, **given: ClipDataset(  # noqa: E731
        data, entries, modalities, 2, 32, train=True, **given).crop_scales
    assert scales(("iframe", "mv", "residual")) == (1.0, 0.875, 0.75, 0.66)
    assert scales(("mv",)) == scales(("residual",)) == (1.0, 0.875, 0.75)
    assert scales(("mv",), crop_scales=(1.0,)) == (1.0,)
    result = CliRunner().invoke(main, ["train", "--data", str(data), "--crop-scales", "1 x"])
    assert result.exit_code == 2 and "crop scales" in result.output


def test_three_crops_are_centred_across_the_shorter_side():
    assert eval_crops(256, 340, 3) == [Crop(0, 16, 224, 224), Crop(58, 16, 224, 224),
                                       Crop(116, 16, 224, 224)]  # left, centre, right
    assert eval_crops(340, 256, 3) == [Crop(16, 0, 224, 224), Crop(16, 58, 224, 224),
                                       Crop(16, 116, 224, 224)]  # top, centre, bottom


def test_official_test_views():
    # TEAM-Net's test: shorter side to 256, a 256 crop (the whole shorter side), a 256 input
    assert eval_crops(256, 340, 1, "team-net") == [Crop(42, 0, 256, 256)]
    assert view_size("team-net", 224) == 256 and view_size("tsn", 224) == 224
    # CoViAR's: squashed to 256 x 256, the centre 224: 7/8 of each side
    assert eval_crops(256, 340, 1, "coviar") == [Crop(21, 16, 298, 224)]
    # its 10 (GroupOverSample): the squashed frame's corners and centre, 224 of 256, flipped:
    # offsets 0, 32 and 16 of 256, here 0, 42 and 21 of 340 across, 0, 32 and 16 down
    places = [(0, 0), (42, 0), (0, 32), (42, 32), (21, 16)]
    assert eval_crops(256, 340, 10, "coviar") == (
        [Crop(x, y, 298, 224) for x, y in places] + [Crop(x, y, 298, 224, True) for x, y in places])
    with pytest.raises(ValueError):
        eval_crops(256, 340, 3, "coviar")
    # what the official scripts cannot give is refused: P-frames they read but the data
    # skip, an RGB model, CoViAR's 3 crops, clips that would all be the same
    for view, crops, clips, p_stride, modalities, problem in [
            ("coviar", 1, 1, 4, ("mv",), "--p-stride 1"),
            ("team-net", 1, 1, 2, ("iframe", "mv"), "--p-stride 1"),
            ("team-net", 1, 1, 1, ("rgb",), "an RGB model"),
            ("coviar", 3, 1, 1, ("mv",), "1 or 10 crops"),
            ("tsn", 1, 2, 1, ("mv",), "only --view team-net draws clips")]:
        with pytest.raises(SplitError, match=re.escape(problem)):
            check_official_view(view, crops, clips, p_stride, modalities, "data")
    check_official_view("tsn", 3, 1, 4, ("rgb",), "data")  # ours takes any


@pytest.mark.parametrize("segments", [3, 8, 25])
def test_the_official_coviar_test_frames(segments):
    for n in range(2, 500):
        for p_frames in (False, True):
            gops, slots = official_test_clip("coviar", reference.gops_of(n), segments, p_frames)
            expected = [reference.official_coviar_test(n, segments, seg, p_frames)
                        for seg in range(segments)]
            assert gops.tolist() == [gop for gop, _ in expected], (n, p_frames)
            if p_frames:  # stored P-frame j is GOP position j + 1
                assert (slots + 1).tolist() == [position for _, position in expected]


def test_the_official_team_net_test_draws_a_random_frame_a_segment():
    n, segments = 100, 8  # segments of 12-13 frames: most span two GOPs, unevenly
    draws = np.array([official_test_clip("team-net", reference.gops_of(n), segments, True,
                                         np.random.default_rng(k))[0] for k in range(4000)])
    for seg in range(segments):
        begin, end = reference.official_range(n, segments, seg, False)
        expected = np.bincount(np.arange(begin, end) // 12, minlength=9)[:9] / (end - begin)
        seen = np.bincount(draws[:, seg], minlength=9)
        assert set(np.flatnonzero(seen)) == set(np.flatnonzero(expected)), seg
        # each GOP as often as the segment has frames in it: chi-square, 8 degrees at most,
        # under 30 (p < 1e-3 for any seed) where a GOP drawn by halves would give hundreds
        kept = expected > 0
        chi = ((seen[kept] - 4000 * expected[kept]) ** 2 / (4000 * expected[kept])).sum()
        assert chi < 30, (seg, seen, expected)
    # P-frame 5 (slot 4), or the last of a GOP that ends before it
    picks = np.concatenate([np.stack(official_test_clip(
        "team-net", [11, 2], 2, True, np.random.default_rng(k))) for k in range(50)], axis=1)
    assert {(gop, slot) for gop, slot in picks.T.tolist()} == {(0, 4), (1, 1)}


# --- the official CoViAR augmentation (--augment coviar) -------------------------------------

def test_hls_conversions_are_python_s_own():
    rng = np.random.default_rng(0)
    rgb = rng.random((3000, 3))
    rgb[:30] = rgb[:30, :1]  # greys: no hue
    hue, light, saturation = rgb_to_hls(rgb)
    python = np.array([colorsys.rgb_to_hls(*pixel) for pixel in rgb])
    assert np.allclose(np.stack([hue / 360, light, saturation], axis=1), python, atol=1e-12)
    hls = rng.random((3000, 3)) * [360, 1, 1]
    python = np.array([colorsys.hls_to_rgb(h / 360, l, s) for h, l, s in hls])
    assert np.allclose(hls_to_rgb(*hls.T), python, atol=1e-12)
    assert np.allclose(hls_to_rgb(np.float64(360), 0.5, 1.0), [1, 0, 0])  # 360 degrees: red


def test_i_frame_colours_are_jittered_as_the_official_code_does():
    frames = np.random.default_rng(1).integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    jittered = jitter_colours(frames, np.random.default_rng(2))
    # each frame its own draw, hue +-72 degrees (clipped at 0 and 360), the others +-50/255
    shifts = np.random.default_rng(2).uniform(-1, 1, (6, 3)) * [72, 50 / 255, 50 / 255]
    for frame, moved, (dh, dl, ds) in zip(frames, jittered, shifts):
        for pixel, got in zip(frame.reshape(-1, 3) / 255, moved.reshape(-1, 3)):
            h, l, s = colorsys.rgb_to_hls(*pixel)
            expected = colorsys.hls_to_rgb(min(max(h * 360 + dh, 0), 360) / 360 % 1,
                                           min(max(l + dl, 0), 1), min(max(s + ds, 0), 1))
            assert np.abs(np.rint(np.array(expected) * 255) - got).max() <= 1
    assert np.abs(shifts).max(axis=0).tolist() > [50, 0.1, 0.1]  # draws that move colours


def test_official_coviar_crops_are_anywhere_and_each_branch_its_own(motion):
    rng = np.random.default_rng(0)
    places = {(c.x, c.y) for c in (train_crop(256, 340, rng, scales=(.875,), anywhere=True)
                                   for _ in range(3000))}
    # 224 x 224 of 340 x 256: every offset 0-116 across and 0-32 down, not only quarters
    assert {x for x, _ in places} == set(range(117)) and {y for _, y in places} == set(range(33))
    data, _, _ = motion
    entries = [(v["id"], v["label"]) for v in load_index(data)["videos"][:8]]
    apart = ClipDataset(data, entries, ("iframe", "mv", "residual"), 2, 32, train=True,
                        augment="coviar", apart=True)
    crops = [apart.clip_crops(i % 8, np.random.default_rng(i)) for i in range(400)]
    sides = {m: {c[m][0].width / 64 for c in crops} for m in apart.modalities}
    assert sides["iframe"] == {1.0, 0.875, 0.75, 0.65625}  # .66 of 64: 42 pixels
    assert sides["mv"] == sides["residual"] == {1.0, 0.875, 0.75}  # the P-frame models'
    assert np.mean([c["iframe"] != c["mv"] for c in crops]) > 0.9
    assert np.mean([c["iframe"][0].flip != c["mv"][0].flip for c in crops]) > 0.3
    # a preset recipe trains with it, recorded; TEAM-Net's inputs stay aligned
    coviar = TrainConfig(model=ModelConfig(model="coviar"),
                         data=DataConfig(data=str(data), workers=0))
    assert coviar.data.augment == "coviar" and coviar.branches_apart()
    loader = training_loader(coviar, entries, apart.modalities,
                             Context(0, 0, 1, torch.device("cpu")), True)
    assert (loader.dataset.augment, loader.dataset.apart) == ("coviar", True)  # what trains
    assert TrainConfig().data.augment == "tsn" and not TrainConfig().branches_apart()
    assert not TrainConfig(data=DataConfig(augment="coviar")).branches_apart()
    with pytest.raises(SettingsError, match="--flip-pairs"):
        TrainConfig(model=ModelConfig(model="coviar"), data=DataConfig(flip_pairs="ssv2"))
    old = coviar.as_dict()  # a config written before --augment trained with TSN's
    del old["data"]["augment"]
    assert TrainConfig.from_dict(old).data.augment == "tsn"


# --- initial weights, learning rates, recipes -----------------------------------------------------

def test_imagenet_means_the_weights_the_reference_loaded():
    assert ModelConfig().pretrained == "IMAGENET1K_V1" == parse_pretrained("imagenet")
    assert parse_pretrained("imagenet1k_v2") == "IMAGENET1K_V2"
    assert parse_pretrained("weights/r50.pth") == "weights/r50.pth"
    assert str(imagenet_weights("IMAGENET1K_V1", "resnet50")) == "ResNet50_Weights.IMAGENET1K_V1"
    assert str(imagenet_weights("IMAGENET1K_V2", "resnet50")) == "ResNet50_Weights.IMAGENET1K_V2"
    # ResNet-18 has only V1 (torchvision's DEFAULT for ResNet-50 is V2: not what the paper had)
    assert str(imagenet_weights("IMAGENET1K_V2", "resnet18")) == "ResNet18_Weights.IMAGENET1K_V1"
    assert str(imagenet_weights("imagenet", "resnet50")) == "ResNet50_Weights.IMAGENET1K_V1"
    assert imagenet_weights("none", "resnet50") is None


def _rates(groups, model):
    owner = {id(p): name for name, p in model.named_parameters()}
    return {owner[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


def test_head_learning_rate_depends_on_pretrained_backbones():
    model = TEAMNet(4, "resnet18", "resnet18")
    for pretrained, (weight, bias) in ((True, (0.05, 0.1)), (False, (0.01, 0.01))):
        rates = _rates(parameter_groups(model, 5e-4, 0.01, pretrained=pretrained), model)
        assert rates["heads.iframe.fc.weight"] == (pytest.approx(weight), 5e-4)
        assert rates["heads.mv.fc.bias"] == (pytest.approx(bias), 0.0)
        assert rates["branches.iframe.stages.1.0.conv1.weight"] == (0.01, 5e-4)
    rates = _rates(parameter_groups(model, 5e-4, 0.01, head_lr_mult=2, pretrained=True), model)
    assert rates["heads.iframe.fc.bias"][0] == rates["heads.iframe.fc.weight"][0] == 0.02


def test_coviar_trains_with_the_official_recipe_by_default():
    config = TrainConfig(model=ModelConfig(model="coviar"))
    assert (config.optim.recipe, config.optim.lr, config.optim.weight_decay,
            config.optim.clip_grad, config.model.dropout) == ("coviar", None, 1e-4, 0.0, 0.0)
    ours = TrainConfig()
    assert (ours.optim.recipe, ours.optim.lr, ours.optim.weight_decay, ours.optim.clip_grad,
            ours.model.dropout) == ("teamnet", 0.01, 5e-4, 20.0, 0.5)
    given = TrainConfig(model=ModelConfig(model="coviar", dropout=0.2),
                        optim=OptimConfig(recipe="teamnet", lr=0.02))
    assert (given.optim.recipe, given.optim.lr, given.optim.clip_grad, given.model.dropout) == (
        "teamnet", 0.02, 20.0, 0.2)
    with pytest.raises(SettingsError, match="--model coviar or tsn"):
        TrainConfig(optim=OptimConfig(recipe="coviar"))
    # a config written before recipes existed trained with TEAM-Net's
    old = ours.as_dict()
    del old["optim"]["recipe"]
    old["model"]["model"] = "coviar"
    assert TrainConfig.from_dict(old).optim.recipe == "teamnet"

    model = CoViAR(4, "resnet18", "resnet18", dropout=0.0)
    optimizer = make_optimizer(model, config)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["eps"] == 1e-3
    rates = _rates(optimizer.param_groups, model)
    assert len(rates) == len(list(model.parameters()))
    approx = lambda rate, decay: (pytest.approx(rate), decay)  # noqa: E731
    assert rates["heads.iframe.fc.weight"] == approx(3e-4, 1e-4)
    assert rates["heads.mv.fc.bias"] == approx(1e-2, 0.0)
    assert rates["branches.iframe.stages.0.0.weight"] == approx(3e-6, 1e-4)  # backbone /100
    assert rates["branches.mv.stages.0.0.weight"] == approx(1e-3, 1e-4)  # MV's new conv1 /10
    assert rates["branches.residual.input_norm.weight"] == approx(5e-4, 1e-4)
    assert rates["branches.residual.stages.4.1.bn2.weight"] == approx(5e-5, 1e-4)
    # an RGB TSN's network is the I-frame one: the I-frame rate, its pretrained conv1 at /100
    rgb = TSN(4, "rgb", "resnet18", dropout=0.0)
    rates = _rates(make_optimizer(rgb, config).param_groups, rgb)
    assert rates["heads.rgb.fc.weight"] == approx(3e-4, 1e-4)
    assert rates["branches.rgb.stages.0.0.weight"] == approx(3e-6, 1e-4)


def _train_config(*args):
    """The TrainConfig `teamnet train ARGS` runs with (its options parsed, its recipe's
    preset applied where the options leave it)."""
    command = main.commands["train"]
    context = command.make_context("train", ["--data", ".", *args])
    given = {name for name in context.params
             if context.get_parameter_source(name).name == "COMMANDLINE"}
    return TrainConfig.from_options(with_recipe(context.params, given))


@pytest.mark.parametrize("recipe, modality, expected", [
    ("coviar-hmdb51", "iframe", (3e-4, 220, (55, 110, 165), 40, "resnet152")),
    ("coviar-hmdb51", "mv", (5e-3, 360, (120, 200, 280), 80, "resnet50")),
    ("coviar-hmdb51", "residual", (1e-3, 300, (120, 180, 240), 80, "resnet50")),
    ("coviar-ucf101", "iframe", (3e-4, 510, (150, 270, 390), 80, "resnet152")),
    ("coviar-ucf101", "residual", (5e-3, 510, (150, 270, 390), 80, "resnet50")),
])
def test_the_official_coviar_runs_are_named_presets(recipe, modality, expected):
    # pytorch-coviar's GETTING_STARTED, one run a branch on each dataset
    config = _train_config("--model", "tsn", "--modality", modality, "--recipe", recipe)
    assert (config.optim.lr, config.optim.epochs, config.optim.lr_steps,
            config.data.batch_size, config.model.iframe_arch) == expected
    assert (config.optim.recipe, config.optim.weight_decay, config.model.dropout,
            config.data.num_segments, config.data.augment) == (recipe, 1e-4, 0.0, 3, "coviar")
    given = _train_config("--model", "tsn", "--modality", modality, "--recipe", recipe,
                          "--epochs", "3", "--batch-size", "8")  # what is typed wins
    assert (given.optim.epochs, given.data.batch_size, given.optim.lr) == (3, 8, expected[0])


def test_a_joint_coviar_takes_its_dataset_s_branch_rates_where_they_share_a_schedule():
    config = _train_config("--model", "coviar", "--recipe", "coviar-ucf101",
                           "--iframe-arch", "resnet18", "--pframe-arch", "resnet18")
    assert (config.optim.lr, config.optim.epochs, config.optim.lr_steps) == (
        None, 510, (150, 270, 390))
    model = CoViAR(4, "resnet18", "resnet18", dropout=0.0)
    rates = _rates(make_optimizer(model, config).param_groups, model)
    assert [rates[f"heads.{m}.fc.weight"][0] for m in ("iframe", "mv", "residual")] == \
        pytest.approx([3e-4, 1e-2, 5e-3])
    hmdb = dataclasses.replace(config, optim=dataclasses.replace(config.optim,
                                                                 recipe="coviar-hmdb51"))
    rates = _rates(make_optimizer(model, hmdb).param_groups, model)
    assert [rates[f"heads.{m}.fc.weight"][0] for m in ("iframe", "mv", "residual")] == \
        pytest.approx([3e-4, 5e-3, 1e-3])
    with pytest.raises(SettingsError, match="train for different epochs or batches; train "
                                            "each as --model tsn"):
        _train_config("--model", "coviar", "--recipe", "coviar-hmdb51")


def test_the_official_team_net_recipe_has_no_weight_decay():
    config = _train_config("--recipe", "team-net-official")
    assert (config.optim.recipe, config.optim.weight_decay, config.optim.lr) == (
        "team-net-official", 0.0, 0.01)
    model = TEAMNet(4, "resnet18", "resnet18")
    optimizer = make_optimizer(model, config)
    assert isinstance(optimizer, torch.optim.SGD)
    assert {group["weight_decay"] for group in optimizer.param_groups} == {0.0}
    assert 5e-4 in {g["weight_decay"] for g in make_optimizer(
        model, _train_config()).param_groups}  # the paper's, on conv and linear weights


def test_coviar_branches_are_clipped_apart():
    # one global norm made every branch's step depend on the others' gradients
    model = CoViAR(4, "resnet18", "resnet18")
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    model.heads["iframe"].fc.weight.grad.fill_(100.0)
    model.heads["mv"].fc.weight.grad[0, 0] = 3.0  # norm 3: under the threshold, kept as it is
    clip_gradients(model, 20.0)
    assert torch.linalg.vector_norm(model.heads["iframe"].fc.weight.grad) == pytest.approx(20.0)
    assert model.heads["mv"].fc.weight.grad[0, 0] == 3.0
    team = TEAMNet(4, "resnet18", "resnet18")
    assert len(team.gradient_groups()) == 1  # one loss: one norm, as the reference


def test_a_batch_the_ranks_cannot_share_is_refused():
    check_batch_split(80, 8)
    with pytest.raises(SettingsError, match="over 6 ranks.*such as 78 or 84"):
        check_batch_split(80, 6)


# --- RGB frames of any position -----------------------------------------------------------------

def test_rgb_frames_are_rebuilt_exactly(tmp_path, clips, pipeline):
    # I-frame + accumulated MV + residual = the decoded P-frame, every pixel, on a real clip
    encoded, data, failures = pipeline(clips, tmp_path, size=(170, 128), storage="int16")
    assert not failures
    video = load_index(data)["videos"][0]
    with av.open(str(next(encoded.rglob(video["id"] + ".mp4")))) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    reader = ClipReader(data)
    checked = 0
    for gop, count in enumerate(video["p_frames"]):
        for slot in range(count):
            rebuilt = decoded_frames(reader, video["id"], [gop], [1 + slot])[0]
            assert np.array_equal(rebuilt, decoded[12 * gop + 1 + slot]), (gop, slot)
            checked += 1
    assert checked >= 20
    both = decoded_frames(reader, video["id"], [gop, 0], [0, 2])  # an I-frame and a P-frame
    assert np.array_equal(both[0], decoded[12 * gop]) and np.array_equal(both[1], decoded[2])


def test_rgb_positions_are_drawn_uniformly_over_the_whole_gop():
    rng = np.random.default_rng(0)
    drawn = np.concatenate([sample_clip([11, 11, 4], 3, False, rng, frames=True)[1][:2]
                            for _ in range(6000)])  # the GOPs of 11 P-frames: 12 positions
    counts = np.bincount(drawn, minlength=12)
    assert len(counts) == 12  # the I-frame (0) and P-frames 1-11, nothing else
    # uniform: Pearson's chi-square over 11 degrees of freedom under 40 (p = 1e-4 for any
    # seed), where a missing or doubled position would give thousands
    expected = len(drawn) / 12
    assert ((counts - expected) ** 2 / expected).sum() < 40, counts
    gops, positions = sample_clip([11, 11, 0], 3, False, frames=True)
    assert gops.tolist() == [0, 1, 2] and positions.tolist() == [5, 5, 0]


@pytest.fixture(scope="module")
def pans16(tmp_path_factory):
    return motion_dataset.build(tmp_path_factory.mktemp("pans16"), "pan", per_class_train=3,
                                per_class_test=2, storage="int16")


def test_rgb_tsn_trains_on_int16_data_and_refuses_int8(tmp_path, pans16, motion):
    runner = CliRunner()
    data, train_list, test_list = pans16
    result = runner.invoke(main, ["train", "--data", str(data), "--train-list", str(train_list),
                                  "--output", str(tmp_path / "rgb"), "--model", "tsn",
                                  "--modality", "rgb", "--epochs", "1", *SMALL])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "rgb" / "config.json").read_text())
    assert config["model"]["modality"] == "rgb" and config["data"]["crop_scales"] is None
    result = runner.invoke(main, ["evaluate", "--checkpoint", str(tmp_path / "rgb" / "best.pt"),
                                  "--list", str(test_list), "--num-segments", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["videos"] == 8
    # what it sees, in training and in test: decoded frames of any position of the GOPs
    # drawn, cropped, here compared with an independent decode of the encoded video (PyAV)
    video = load_index(data)["videos"][0]
    decoded = np.stack([rgb for _, rgb, _ in reference.decode_all(
        data.parent / "encoded" / video["source"])])
    for train in (True, False):
        dataset = ClipDataset(data, [(video["id"], 0)], ("rgb",), 4, 32, train=train)
        rng = np.random.default_rng((0, 3, 0)) if train else None  # item (epoch 3, 0)'s
        gops, positions = dataset.clip_positions(0, rng)
        crop = dataset.clip_crops(0, rng)["rgb"][0]
        seen = dataset[(3, 0)][0]["rgb"]
        assert np.array_equal(seen, apply_crop(decoded[12 * gops + positions], crop, 32)
                              .permute(0, 2, 3, 1))
        assert train or positions.tolist() == [5, 5, 5, 5]  # P-frame 5 in test
    data8, train8, _ = motion
    result = runner.invoke(main, ["train", "--data", str(data8), "--train-list", str(train8),
                                  "--output", str(tmp_path / "rgb8"), "--model", "tsn",
                                  "--modality", "rgb", "--epochs", "1", *SMALL])
    assert result.exit_code == 1 and "--storage int16" in result.output, result.output


# --- per-video scores, fused late -----------------------------------------------------------------

def _train(runner, data, train_list, output, *options):
    result = runner.invoke(main, ["train", "--data", str(data), "--train-list", str(train_list),
                                  "--output", str(output), "--epochs", "1", *SMALL, *options])
    assert result.exit_code == 0, result.output
    return output / "best.pt"


def _evaluate(runner, checkpoint, test_list, scores):
    result = runner.invoke(main, ["evaluate", "--checkpoint", str(checkpoint), "--list",
                                  str(test_list), "--num-segments", "2", "--scores",
                                  str(scores), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_scores_are_written_and_fused(tmp_path, motion):
    runner = CliRunner()
    data, train_list, test_list = motion
    coviar = _train(runner, data, train_list, tmp_path / "coviar", "--model", "coviar",
                    "--recipe", "teamnet")
    tsn = _train(runner, data, train_list, tmp_path / "tsn", "--model", "tsn", "--modality", "mv")
    videos = test_list.read_text().split()
    halves = []
    for n, part in enumerate((videos[:12], videos[12:])):  # two "splits"
        halves.append(tmp_path / f"split{n}.txt")
        halves[-1].write_text("\n".join(part) + "\n")
    files, reports = [], []
    for n, listed in enumerate(halves):
        for name, checkpoint in (("coviar", coviar), ("tsn", tsn)):
            files.append(tmp_path / f"split{n}-{name}.npz")
            reports.append(_evaluate(runner, checkpoint, listed, files[-1]))
    with np.load(files[0], allow_pickle=False) as archive:
        assert sorted(archive.files) == ["about", "classes", "labels", "logits_fused",
                                         "logits_iframe", "logits_mv", "logits_residual",
                                         "videos", ]
        logits, labels = archive["logits_fused"], archive["labels"]
        # the fused logits are CoViAR's 2:1:1 of its branches, and give the report's top-1
        assert np.allclose(logits, 2 * archive["logits_iframe"] + archive["logits_mv"]
                           + archive["logits_residual"], atol=1e-4)
        assert np.mean(logits.argmax(1) == labels) == pytest.approx(reports[0]["top1"])
        assert [Path(v).name for v in archive["videos"]] == [
            Path(v).stem.split("/")[-1] for v in videos[:12]]
        assert json.loads(str(archive["about"]))["view"] == "tsn"
    result = runner.invoke(main, ["fuse", *map(str, files), "--weights", "1,2", "--json"])
    assert result.exit_code == 0, result.output
    fused = json.loads(result.stdout.strip().splitlines()[-1])
    expected = []
    for n in range(2):  # independently: 1 x CoViAR + 2 x MV TSN, per split
        a, b = (np.load(files[2 * n + k], allow_pickle=False) for k in range(2))
        total = a["logits_fused"] + 2 * b["logits_fused"]
        expected.append(np.mean(total.argmax(1) == a["labels"]))
    assert [g["report"]["top1"] for g in fused["groups"]] == pytest.approx(expected)
    assert fused["mean"]["top1"] == pytest.approx(np.mean(expected))
    assert "mean over 2 lists" in result.output
    assert result.output.startswith("fused logits, weighted 1:2\n"
                                    f"1 x {files[0]} + 2 x {files[1]}: 12 videos, top-1 ")
    # one branch of each file, and what cannot be fused
    assert fuse(files[:1], branch="iframe")["groups"][0]["report"]["videos"] == 12
    with pytest.raises(ScoreFileError, match="same number of files"):
        fuse(files[:3])
    with pytest.raises(ScoreFileError, match="no 'iframe' logits"):
        fuse(files[1:2], branch="iframe")


def test_a_hostile_score_file_is_refused(tmp_path):
    # object arrays would need pickle, which a score file is never read with
    np.savez(tmp_path / "evil.npz", videos=np.array([object()], dtype=object))
    (tmp_path / "text.npz").write_text("not an archive")
    for name in ("evil.npz", "text.npz"):
        with pytest.raises(ScoreFileError, match="not a score file|holds object values"):
            fuse([tmp_path / name])


def _score_file(path, **arrays):
    """A score file as evaluate writes it (4 videos, 2 classes), with arrays replaced."""
    found = {"videos": np.array(["a", "b", "c", "d"]), "labels": np.array([0, 1, 1, 0]),
             "classes": np.array(["x", "y"]), "about": np.array("{}"),
             "logits_fused": np.eye(4, 2, dtype=np.float32), **arrays}
    np.savez(path, **{name: value for name, value in found.items() if value is not None})
    return path


@pytest.mark.parametrize("arrays, problem", [
    ({"videos": np.array(["a", "b", "a", "c"])}, "video 'a' is scored twice (rows 0 and 2)"),
    ({"labels": np.array([0, -1, 1, 0])}, "video 'b' has label -1, not a class number 0-1"),
    ({"labels": np.array([0, 99, 1, 0])}, "video 'b' has label 99"),
    ({"classes": np.array("x")}, "its arrays do not fit one another"),
    ({"logits_fused": np.full((4, 2), "1")}, "logits_fused holds <U1 values, not numbers"),
    ({"logits_fused": np.full((4, 2), np.nan)}, "holds values that are not finite"),
    ({"extra": np.zeros(3)}, "holds 'extra.npy', which a score file"),
    ({"about": None}, "lacks about"),
])
def test_score_files_are_checked_before_they_are_fused(tmp_path, arrays, problem):
    path = _score_file(tmp_path / "scores.npz", **arrays)
    with pytest.raises(ScoreFileError, match=re.escape(problem)):
        fuse([path])


def test_a_declared_shape_without_the_bytes_behind_it_is_never_loaded(tmp_path):
    import io
    import zipfile
    path = _score_file(tmp_path / "scores.npz")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = io.BytesIO()  # logits of 3.6 TiB declared, 32 bytes behind them
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (999_999_999, 999)})
    members["logits_fused.npy"] = header.getvalue() + bytes(32)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ScoreFileError, match=r"logits_fused declares shape \(999999999, 999\)"):
        fuse([path])
    good = _score_file(tmp_path / "good.npz")
    result = CliRunner().invoke(main, ["fuse", str(good), "--weights", "nan"])
    assert result.exit_code == 1 and "every weight must be a finite number" in result.output
