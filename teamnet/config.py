"""Training configuration: typed sections filled by the CLI, saved with every run and checkpoint.

Defaults are the paper's Kinetics recipe (section 4.1, representation.md section 8).
"""
from dataclasses import asdict, dataclass, field


@dataclass
class DataConfig:
    data: str = ""  # the output folder of `teamnet extract`
    train_list: str = None  # None: every video of the dataset
    test_list: str = None
    list_format: str = "auto"
    split: int = 1  # HMDB-51 split number when a folder of split files is given
    val_fraction: float = 0.1  # held out from the training list to select the best checkpoint
    num_segments: int = 8
    input_size: int = 224
    batch_size: int = 80  # global, over all ranks
    workers: int = 8  # loader workers per rank


@dataclass
class ModelConfig:
    model: str = "teamnet"  # teamnet | tsn | coviar
    modality: str = "iframe"  # TSN only
    iframe_arch: str = "resnet50"
    pframe_arch: str = "resnet18"
    team_positions: tuple = ("stem", "res2", "res3", "res4")
    team_arrangement: str = "c->s"
    temporal_shift: bool = False
    dropout: float = 0.5
    pretrained: str = None  # "imagenet", a state dict file or a folder of <arch>.pth
    init_from: str = None  # a TEAM-Net checkpoint (heads re-initialised if classes differ)


@dataclass
class OptimConfig:
    epochs: int = 50
    lr: float = 0.01
    lr_steps: tuple = (30, 40, 45)
    momentum: float = 0.9
    weight_decay: float = 5e-4  # conv and linear weights only
    clip_grad: float = 20.0  # max gradient norm (reference); 0: off


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: str = "runs/teamnet"
    seed: int = 0
    compile: bool = False
    device: str = "auto"

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        for name, section in (("data", DataConfig), ("model", ModelConfig), ("optim", OptimConfig)):
            values[name] = section(**_tuples(values[name]))
        return cls(**values)


def _tuples(values):
    """JSON gives lists back; the config holds tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
