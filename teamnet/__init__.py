"""TEAM-Net: training, evaluation and serving on the partially decoded representation
(preprocess/ makes it). `teamnet.inputs(video, model)` gives the arrays an exported model
takes for a video file (teamnet/serving.py)."""


def inputs(video, model):
    """The arrays `model` (an exported .onnx or .pt2, or a checkpoint) takes for a video
    file: see teamnet.serving.inputs."""
    from .serving import inputs as make
    return make(video, model)
