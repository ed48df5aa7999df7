"""Training and evaluation settings: typed sections, each setting defined once.

Every field is made with `setting()` (preprocess/settings.py), so its default, choices and help
text live here and nowhere else: cli.py derives the options of `teamnet train` and `teamnet
evaluate` from these fields, and builds the configs by keyword. The resolved TrainConfig is
written into the run folder and into every checkpoint.

Defaults are the paper's Kinetics recipe (section 4.1; docs/REPRESENTATION.md section 8).
The lists of choices are defined here too (the model code imports them), so that reading
the settings never imports torch.
"""
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path

from preprocess.errors import SettingsError
from preprocess.settings import option_name, parse_part, setting

MODELS = ("teamnet", "tsn", "coviar")
MODALITIES = ("iframe", "mv", "residual")  # what partial decoding gives
# TSN's inputs: those, or "rgb", decoded frames of any position in the GOP, rebuilt exactly
# from the stored I-frame, accumulated MV and residual (TSN on full decoding, paper Table 1)
INPUTS = (*MODALITIES, "rgb")
PIXELS = ("iframe", "rgb")  # the inputs of uint8 RGB pixels: ImageNet-normalised, --iframe-arch
ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
POSITIONS = ("stem", "res2", "res3", "res4", "res5")  # the stages TEAM can follow
ARRANGEMENTS = ("c", "s", "c+s", "s->c", "c->s")  # paper Table 3
LIST_FORMATS = ("auto", "ucf101", "hmdb51", "kinetics", "ssv2", "generic")
CROPS = (1, 3, 10)
RECIPES = ("teamnet", "team-net-official", "coviar", "coviar-ucf101", "coviar-hmdb51")
TEST_VIEWS = ("tsn", "team-net", "coviar")
AUGMENTATIONS = ("tsn", "coviar")
# What each recipe sets where the command line leaves it (docs/REPRESENTATION.md section 10):
# TEAM-Net's (the paper's, SGD); the official TEAM-Net code's, whose weight decay is
# effectively 0 (its test for biases and BatchNorm parameters is true of every parameter);
# and the official CoViAR code's (Adam, no dropout, no clip)
RECIPE_DEFAULTS = {"teamnet": {"dropout": 0.5, "lr": 0.01, "weight_decay": 5e-4,
                               "clip_grad": 20.0},
                   "team-net-official": {"dropout": 0.5, "lr": 0.01, "weight_decay": 0.0,
                                         "clip_grad": 20.0},
                   **{name: {"dropout": 0.0, "lr": None, "weight_decay": 1e-4, "clip_grad": 0.0}
                      for name in RECIPES if name.startswith("coviar")}}
# The official CoViAR code's learning rates on UCF-101 (its GETTING_STARTED), one a branch
# (an RGB TSN's frames take the I-frame rate: its network is the I-frame one, on pixels)
COVIAR_LR = {"iframe": 3e-4, "mv": 1e-2, "residual": 5e-3, "rgb": 3e-4}
# The official CoViAR runs, one a branch (its GETTING_STARTED, split 1 of each dataset; its
# train.py's 3 segments, which those commands leave as they are), as --recipe
# coviar-ucf101|coviar-hmdb51 sets them where the command line leaves them
_UCF_STEPS = {"epochs": 510, "lr_steps": (150, 270, 390), "batch_size": 80, "num_segments": 3}
COVIAR_PRESETS = {
    "coviar-ucf101": {"iframe": {"lr": 3e-4, "iframe_arch": "resnet152", **_UCF_STEPS},
                      "mv": {"lr": 1e-2, **_UCF_STEPS}, "residual": {"lr": 5e-3, **_UCF_STEPS}},
    "coviar-hmdb51": {"iframe": {"lr": 3e-4, "iframe_arch": "resnet152", "batch_size": 40,
                                 "epochs": 220, "lr_steps": (55, 110, 165), "num_segments": 3},
                      "mv": {"lr": 5e-3, "batch_size": 80, "epochs": 360,
                             "lr_steps": (120, 200, 280), "num_segments": 3},
                      "residual": {"lr": 1e-3, "batch_size": 80, "epochs": 300,
                                   "lr_steps": (120, 180, 240), "num_segments": 3}}}


def uses_adam(recipe):
    """Whether a recipe trains as the official CoViAR code (Adam, a rate a branch)."""
    return recipe.startswith("coviar")


def branch_rates(recipe):
    """{modality: learning rate} of a CoViAR recipe's branches (an RGB TSN's: the I-frame's)."""
    preset = COVIAR_PRESETS.get(recipe)
    if preset is None:
        return COVIAR_LR
    return {**{m: values["lr"] for m, values in preset.items()}, "rgb": preset["iframe"]["lr"]}


def with_recipe(options, given):
    """The command line's options with what a preset recipe (coviar-ucf101, coviar-hmdb51)
    sets, where `given` (the options typed) leaves it: the official run of the model's branch
    (a TSN of one modality), or of all three where they share one schedule (a joint CoViAR
    on UCF-101)."""
    preset = COVIAR_PRESETS.get(options.get("recipe"))
    if preset is None:
        return options
    if options.get("model") == "coviar":
        runs = [preset[m] for m in MODALITIES]
        if any(run[k] != runs[0][k] for run in runs for k in ("epochs", "lr_steps", "batch_size")):
            raise SettingsError(
                f"--recipe {options['recipe']}: the official runs of the three branches train "
                "for different epochs or batches; train each as --model tsn --modality "
                "iframe|mv|residual with this recipe, then `teamnet fuse` them (--weights 2,1,1)")
        values = {k: v for k, v in preset["iframe"].items() if k != "lr"}  # rates: per branch
    else:
        modality = "iframe" if options.get("modality") in PIXELS else options.get("modality")
        values = preset[modality]
    return {**options, **{k: v for k, v in values.items() if k not in given}}


DEFAULT_DROPOUT = RECIPE_DEFAULTS["teamnet"]["dropout"]
MISSING = ("skip", "error")
# Flip pairs shipped with the package (teamnet/), by the name --flip-pairs takes
SHIPPED_FLIP_PAIRS = {"ssv2": "ssv2_flip_pairs.txt"}


def _words(text):
    return text.replace(",", " ").split()


def parse_epochs(text):
    """"30 40 45" (or "30,40,45") -> (30, 40, 45)."""
    try:
        return tuple(int(word) for word in _words(text))
    except ValueError:
        raise SettingsError(f"{text!r} is not a list of epochs like '30 40 45'") from None


def parse_scales(text):
    """"1 .875 .75" -> (1.0, 0.875, 0.75): crop sides relative to the shorter side."""
    try:
        scales = tuple(float(word) for word in _words(text))
    except ValueError:
        scales = ()
    if not scales or not all(0 < scale <= 1 for scale in scales):
        raise SettingsError(f"{text!r} is not a list of crop scales in (0, 1] like "
                            "'1 .875 .75 .66'")
    return scales


IMAGENET_WEIGHTS = ("IMAGENET1K_V1", "IMAGENET1K_V2")  # torchvision's names


def parse_pretrained(text):
    """"imagenet" -> "IMAGENET1K_V1", the weights the reference's pretrained=True loaded, so
    that config.json names the weights a run started from; files and "none" as they are."""
    if text.lower() == "imagenet":
        return IMAGENET_WEIGHTS[0]
    return text.upper() if text.upper() in IMAGENET_WEIGHTS else text


def parse_positions(text):
    """"stem res2 res3 res4" -> a tuple of stages; "none" -> () (no TEAM module)."""
    positions = tuple(word for word in _words(text) if word != "none")
    unknown = sorted(set(positions) - set(POSITIONS))
    if unknown:
        raise SettingsError(f"{', '.join(unknown)}: choose from {', '.join(POSITIONS)} or none")
    return positions


def parse_flip_pairs(text):
    """--flip-pairs: a shipped file's name (kept as it is: the installed package holds it)
    or a file that is there."""
    if text in SHIPPED_FLIP_PAIRS or Path(text).is_file():
        return text
    raise SettingsError(f"{text!r}: no such file, and not one of the pairs shipped "
                        f"({', '.join(SHIPPED_FLIP_PAIRS)})")


def show_words(values):
    return " ".join(map(str, values)) or "none"


# Settings that training and evaluation share, made by one function each.
def _list_format():
    return setting("auto", "Format of the lists (auto: from their content; HMDB-51's split "
                   "files from their names).",
                   choices=LIST_FORMATS)


def _missing():
    return setting("skip", "Listed videos the data lack (about 10% of Kinetics is never "
                   "downloaded): skip (counted, named in the run's missing.txt) or error.",
                   choices=MISSING)


def _split():
    return setting(1, "HMDB-51 split number, when a folder of split files is given.", minimum=1)


def _class_index():
    return setting(None, "UCF-101's classInd.txt, naming the numbered labels of a list saved "
                   "away from it [default: the classInd.txt beside the list].", path="file")


def _device():
    return setting("auto", "auto (a GPU if there is one), cuda or cpu.")


@dataclass
class DataConfig:
    data: str = setting(None, "Output folder of `teamnet extract` (required, unless --resume).",
                        path="dir")
    train_list: str = setting(None, "Training videos [default: all of --data but the "
                              "--test-list ones].", path="any")
    test_list: str = setting(None, "Evaluated once with the best checkpoint at the end (never "
                             "used to select).", path="any")
    list_format: str = _list_format()
    split: int = _split()
    missing: str = _missing()
    val_fraction: float = setting(0.1, "Share of each class held out from the training list "
                                  "to select `best.pt`.", minimum=0.0, maximum=0.9)
    group_pattern: str = setting("auto", "Regex whose first group names the source video of a "
                                 "clip: its clips are held out together. auto: UCF-101's "
                                 "_gNN_ when every name has it, else none (one a video).")
    flip: str = setting("on", "Horizontal flips in training (p = 0.5): on for UCF-101 or "
                        "Kinetics; off where classes are defined by direction "
                        "(Something-Something, Jester).", choices=("on", "off"))
    flip_pairs: str = setting(None, "With --flip on: pairs of classes a flip turns into each "
                              "other (left/right): ssv2 (shipped: Something-Something v2's) "
                              "or a file of 'class,class' lines.", parse=parse_flip_pairs,
                              metavar="ssv2|FILE")
    class_index: str = _class_index()
    crop_scales: tuple = setting(None, "Sides of the training crops x the shorter side, "
                                 "drawn for width and height [default: 1 .875 .75 .66 for "
                                 "a model that reads I-frames, 1 .875 .75 for MVs or "
                                 "residuals alone: the reference's].", parse=parse_scales,
                                 show=show_words, metavar="SCALES")
    augment: str = setting(None, "Training augmentation: tsn (crops at TSN's 13 places, one "
                           "for all modalities) or coviar (the official CoViAR code's: crops "
                           "anywhere, I-frame colours jittered in HLS, and with --model coviar "
                           "each branch cropped and flipped apart at its own scales) "
                           "[default: coviar with a coviar recipe, else tsn].",
                           choices=AUGMENTATIONS)
    num_segments: int = setting(8, "Segments (GOPs) per training clip.", minimum=1)
    input_size: int = setting(224, "Side of the square network input, in pixels.", minimum=32)
    batch_size: int = setting(80, "Global batch size (split over the ranks).", minimum=1)
    workers: int = setting(None, "Data-loader processes per rank [default: the cores "
                           "available to each rank, at most 8].", minimum=0)


@dataclass
class ModelConfig:
    model: str = setting("teamnet", "The network: TEAM-Net or a baseline.", choices=MODELS)
    modality: str = setting("iframe", "TSN's input: iframe (the I-frame TSN: I-frames only), "
                            "rgb (the RGB TSN: decoded frames of any position, rebuilt "
                            "from data extracted with --storage int16), mv or residual "
                            "(iframe and rgb use --iframe-arch, the others --pframe-arch).",
                            choices=INPUTS)
    iframe_arch: str = setting("resnet50", "Backbone of the I-frame branch.", choices=ARCHS)
    pframe_arch: str = setting("resnet18", "Backbone of the MV and residual branches.",
                               choices=ARCHS)
    team_positions: tuple = setting(("stem", "res2", "res3", "res4"), "Stages followed by TEAM "
                                    f"({' '.join(POSITIONS)}, or none).", parse=parse_positions,
                                    show=show_words)
    team_arrangement: str = setting("c->s", "Channel (c) and spatial (s) fusion: in sequence, "
                                    "in parallel (c+s), or one alone.", choices=ARRANGEMENTS)
    temporal_shift: bool = setting(False, "TSM shifts in the residual blocks.")
    dropout: float = setting(None, "Dropout before each branch's classifier [default: 0.5; "
                             "0 with --recipe coviar].", minimum=0.0, maximum=1.0)
    pretrained: str = setting("IMAGENET1K_V1", "Initial weights of the ResNet branches: "
                              "imagenet or IMAGENET1K_V1 (torchvision's first ImageNet weights, "
                              "which the paper's code loaded; downloaded once), IMAGENET1K_V2 "
                              "(the newer ones of ResNet-50/101/152; ResNet-18/34 have only V1 "
                              "and take it), a torchvision state dict file or a folder of "
                              "<arch>.pth, or none (random, from scratch).",
                              parse=parse_pretrained, metavar="WEIGHTS")
    init_from: str = setting(None, "Start from a checkpoint of the same network: every "
                             "weight is taken from it (--pretrained is not fetched), its "
                             "classifier heads only where its class names are this run's "
                             "(else new heads); recorded in init_from.json.", path="file")

    def uses_p_frames(self):
        """Whether the model needs P-frames: all but TSN on I-frames or RGB frames (an RGB
        clip can take a GOP's I-frame where it has no P-frame)."""
        return self.model != "tsn" or self.modality in ("mv", "residual")


@dataclass
class OptimConfig:
    recipe: str = setting(None, "teamnet: SGD, one learning rate, weight decay on conv and "
                          "linear weights (the paper's); team-net-official: the same without "
                          "weight decay (the official code's, in effect); coviar: the "
                          "official CoViAR code's (Adam, a rate a branch, backbones at 1/100 "
                          "of it, no dropout, no gradient clip); coviar-ucf101, "
                          "coviar-hmdb51: that and the official run of each branch on the "
                          "dataset (rate, epochs, steps, batch, I-frame ResNet-152) where not "
                          "given [default: coviar for --model coviar, else teamnet].",
                          choices=RECIPES)
    epochs: int = setting(50, "Epochs to train.", minimum=1)
    lr: float = setting(None, "Initial learning rate [default: 0.01; with --recipe coviar "
                        "CoViAR's per branch: I-frames 0.0003, MVs 0.01, residuals 0.005].",
                        minimum=0.0)
    lr_steps: tuple = setting((30, 40, 45), "Epochs at which the learning rate is divided by "
                              "10.", parse=parse_epochs, show=show_words)
    momentum: float = setting(0.9, "SGD momentum (--recipe teamnet).", minimum=0.0)
    weight_decay: float = setting(None, "L2 weight decay: on conv and linear weights "
                                  "[default: 5e-4]; with --recipe coviar on all but biases "
                                  "[default: 1e-4].", minimum=0.0)
    clip_grad: float = setting(None, "Max gradient norm, of each branch where branches "
                               "train apart (CoViAR) (0: off) [default: 20; 0 with --recipe "
                               "coviar].", minimum=0.0)
    head_lr_mult: float = setting(None, "Learning rate of the classifier heads x this "
                                  "(--recipe teamnet) [default: x5 for weights and x10 for "
                                  "biases with pretrained backbones (the reference's), x1 "
                                  "from scratch].", minimum=0.0)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: str = setting("runs/teamnet", "The run folder.", path="output")
    seed: int = setting(0, "Seed of initialisation, sampling and augmentation.")
    compile: bool = setting(False, "torch.compile the model piece by piece (its blocks and "
                            "TEAM modules; compiled code cached across runs).")
    device: str = _device()
    no_memory_check: bool = setting(False, "Train even where a step is estimated not to fit "
                                    "in the CPU's memory (the estimate is printed first).")

    def __post_init__(self):
        """Every setting a recipe decides, decided: what config.json and checkpoints hold."""
        recipe = self.optim.recipe or ("coviar" if self.model.model == "coviar" else "teamnet")
        if uses_adam(recipe) and self.model.model == "teamnet":
            raise SettingsError(f"--recipe {recipe} trains branches apart, each at its own "
                                "rate: use it with --model coviar or tsn (TEAM-Net's are "
                                "teamnet and team-net-official)")
        defaults = RECIPE_DEFAULTS[recipe]
        self.optim = replace(self.optim, recipe=recipe, **{
            name: defaults[name] if getattr(self.optim, name) is None else getattr(self.optim, name)
            for name in ("lr", "weight_decay", "clip_grad")})
        if self.model.dropout is None:
            self.model = replace(self.model, dropout=defaults["dropout"])
        if self.data.augment is None:
            self.data = replace(self.data, augment="coviar" if uses_adam(recipe) else "tsn")
        if self.branches_apart() and self.data.flip_pairs:
            raise SettingsError("--flip-pairs swaps a clip's label when its frames are flipped; "
                                "--augment coviar flips each branch of --model coviar on its "
                                "own: give --augment tsn with it, or leave --flip-pairs out")

    def branches_apart(self):
        """Whether each branch draws its own crop and flip (the official CoViAR models, each
        trained on its own); TEAM-Net's and one-branch models' inputs share one."""
        return self.data.augment == "coviar" and self.model.model == "coviar"

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """From a saved config (JSON gives lists back; the config holds tuples). Configs of
        earlier versions, which had no recipe, trained with TEAM-Net's (and its augmentation)."""
        values = dict(values)
        values["optim"] = {"recipe": "teamnet", **values["optim"]}
        values["data"] = {"augment": "tsn", **values["data"]}  # all there was before it
        for section in sections(cls):
            values[section.name] = section.type(**_tuples(values[section.name]))
        return cls(**values)

    def flat(self):
        """{field name: value} over every section: the command line's view of the config."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if not is_dataclass(f.type)}
        for section in sections(type(self)):
            values.update(asdict(getattr(self, section.name)))
        return values

    def resumed(self, asked, given, next_epoch):
        """This (saved) config with the changes a resumed run asks for: `given` names the
        options given on the command line, `asked` holds their values. Only RESUMABLE
        settings may change, and learning-rate steps only after next_epoch."""
        mine, theirs = self.flat(), asked.flat()
        changed = sorted(name for name in given if theirs[name] != mine[name])
        fixed = [name for name in changed if name not in RESUMABLE]
        if fixed:
            raise SettingsError(
                f"--resume continues the run as it was configured; these options differ from "
                f"its config.json and cannot change: {', '.join(option_name(n) for n in fixed)} "
                "(start a new --output to change them)")
        taken = lambda steps: sorted(step for step in steps if step <= next_epoch)
        if "lr_steps" in changed and taken(theirs["lr_steps"]) != taken(mine["lr_steps"]):
            trained = "epoch 0 is" if next_epoch == 1 else f"epochs 0-{next_epoch - 1} are"
            raise SettingsError(
                f"--lr-steps: {trained} trained and the learning rate of epoch "
                f"{next_epoch} is set, so the steps at epochs up to {next_epoch} "
                f"are fixed (this run's: {show_words(taken(mine['lr_steps']))}); only steps at "
                f"epoch {next_epoch + 1} or later can change")
        return TrainConfig.from_options({**mine, **{name: theirs[name] for name in changed}})

    @classmethod
    def from_options(cls, options):
        """From one flat mapping of field names to values (the command line's options)."""
        made = {s.name: s.type(**{f.name: options[f.name] for f in fields(s.type)})
                for s in sections(cls)}
        return cls(**made, **{f.name: options[f.name] for f in fields(cls) if f.name not in made})


def _segments():
    return setting(25, "Segments per video; the centre GOP of each.", minimum=1)


def _crops():
    return setting(1, "1: centre crop (the paper); 3: along the longer side; 10: corners + "
                   "centre, flipped.", choices=CROPS)


def _compile():
    return setting(False, "Compile the model piece by piece first (on a GPU, for large "
                   "collections: compiling takes a minute or more; cached across runs).")


def _cam():
    return setting(None, "Also write class activation map pictures (one PNG a video, per "
                   "branch) into this folder.", path="output", metavar="DIR")


def _cam_class():
    return setting(None, "The class whose activation maps --cam draws [default: the "
                   "predicted one].", metavar="NAME")


@dataclass
class EvalConfig:
    """The evaluation protocol (paper section 4.1) and what it runs on. Settings the model
    depends on default to the checkpoint's: None means "as trained"."""
    checkpoint: str = setting(None, "A checkpoint of `teamnet train` (best.pt or last.pt).",
                              path="file", required=True)
    data: str = setting(None, "Output folder of `teamnet extract` [default: the one the "
                        "checkpoint was trained on].", path="dir")
    list: str = setting(None, "Videos to evaluate (UCF-101/HMDB-51/Kinetics/SSv2/generic) "
                        "[default: the run's --test-list, else the videos it did not train "
                        "on].", path="any")
    all_videos: bool = setting(False, "Evaluate every video of --data, training videos "
                               "included (instead of the default list).")
    list_format: str = _list_format()
    class_index: str = _class_index()
    split: int = _split()
    missing: str = _missing()
    num_segments: int = _segments()
    input_size: int = setting(None, "Side of the network input [default: the checkpoint's].",
                              minimum=32)
    crops: int = _crops()
    view: str = setting("tsn", "Which frames and crops the test takes: tsn, the centre GOP "
                        "of each segment and 224/256 of the shorter side (ours, TSN's); "
                        "team-net, the whole shorter side at 256/224 of the input size and a "
                        "random GOP a segment, seeded (the official TEAM-Net test); coviar, "
                        "224/256 of width and height, squashed, at the centre frame of each "
                        "segment (the official CoViAR test; 1 or 10 crops). "
                        "The official views need data extracted with --p-stride 1.",
                        choices=TEST_VIEWS)
    clips: int = setting(1, "Clips a video, their scores averaged: with --view team-net, "
                         "drawn apart (its official test draws 10 for UCF-101 and HMDB-51, 1 "
                         "for Kinetics).", minimum=1)
    seed: int = setting(0, "Seed of --view team-net's random GOPs (recorded in the report).")
    batch_size: int = setting(None, "Videos per step, over all ranks [default: the "
                              "checkpoint's training batch].", minimum=1)
    workers: int = setting(None, "Data-loader processes per rank [default: as trained].",
                           minimum=0)
    device: str = _device()
    confusion: str = setting(None, "Confusion-matrix PNG, or none [default: beside the "
                             "checkpoint, named after it, the list and the protocol].")
    scores: str = setting(None, "Also write every video's logits, fused and per branch, "
                          "into this .npz file (for `teamnet fuse`).", metavar="FILE")
    cam: str = _cam()
    cam_videos: int = setting(8, "With --cam: pictures of the first N videos of the list.",
                              minimum=1, metavar="N")
    compile: bool = _compile()
    cam_class: str = _cam_class()

    def resolved(self, trained):
        """This config with every "as trained" setting taken from a TrainConfig."""
        values = asdict(self)
        values["data"] = self.data or trained.data.data
        values["input_size"] = self.input_size or trained.data.input_size
        for name in ("batch_size", "workers"):  # None: as trained, 0 workers included
            values[name] = getattr(trained.data, name) if values[name] is None else values[name]
        return EvalConfig(**values)


@dataclass
class PredictConfig:
    """`teamnet predict`: the evaluation protocol on new video files."""
    checkpoint: str = setting(None, "A checkpoint of `teamnet train` (best.pt or last.pt).",
                              path="file", required=True)
    top_k: int = setting(5, "Classes listed per video, most probable first.", minimum=1)
    num_segments: int = _segments()
    crops: int = _crops()
    device: str = _device()
    cam: str = _cam()
    cam_class: str = _cam_class()
    workers: int = setting(None, "Processes that re-encode and extract videos (or read "
                           "--data) while the model scores; 0 or 1: this process [default: "
                           "the cores available here].", minimum=0)
    backend: str = setting("joblib", "joblib: those processes here; dask: the workers of "
                           "--scheduler (or a local cluster of --workers), which must see the "
                           "videos at the same paths.", choices=("joblib", "dask"))
    scheduler: str = setting(None, "Dask scheduler, e.g. tcp://head:8786 (with --backend "
                             "dask).", metavar="ADDRESS")
    batch_size: int = setting(None, "Videos the model scores a step [default: 16 on a GPU, "
                              "4 on a CPU].", minimum=1)
    output: str = setting(None, "Also write one JSON line a video here (FILE.jsonl), as each "
                          "is done; a rerun with the same file skips the videos it holds.",
                          metavar="FILE")
    retry_failed: bool = setting(False, "With --output: do the videos that failed again.")
    part: tuple = setting(None, "Only the I-th of N deterministic shares of the videos (one "
                          "predict a node over a shared list, each with its own --output).",
                          parse=parse_part, metavar="I/N")
    compile: bool = _compile()
    window: float = setting(None, "Score consecutive windows of this many seconds (each "
                            "re-encoded and scored with the protocol), giving each video a "
                            "timeline of classes; what is left after the last whole window "
                            "joins it.",
                            minimum=1.0, metavar="SECONDS")
    timeline: str = setting(None, "With --window: a PNG strip of each video's timeline in this "
                            "folder (each window's top k as stacked bands).", path="output",
                            metavar="DIR")


# What a resumed run may change: how long it runs and where, never what it learns from or how.
RESUMABLE = ("epochs", "lr_steps", "workers", "device", "compile", "test_list", "output",
             "no_memory_check")


def sections(config_class):
    """The fields of a config that are configs themselves (TrainConfig's data, model, optim)."""
    return [f for f in fields(config_class) if is_dataclass(f.type)]


def _tuples(values):
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
