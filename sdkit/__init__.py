"""sdkit: a small PyTorch library for (self-)distillation, companion to the book *Self-Distillation, Executed*.

The core, in reading order: data (:mod:`sdkit.data`, :mod:`sdkit.loader`), models (:mod:`sdkit.models`), losses
(:mod:`sdkit.temperature`, :mod:`sdkit.losses`), methods (:mod:`sdkit.methods`), training (:mod:`sdkit.train`),
evaluation (:mod:`sdkit.evaluate`), and :func:`compare`. ``sdkit.extras`` holds robustness, compression and tabular
tools; ``sdkit.book`` what only the book's chapters use.
"""

import importlib

from .compare import compare
from .data import Data, Split, load_dataset
from .evaluate import evaluate, predict_logits
from .loader import BatchLoader
from .losses import distillation_loss, kd_loss, soft_cross_entropy
from .methods import BYOT, CSKD, DLB, PSKD, Distill, EMATeacher, LabelSmoothing, Method, Mixup, TeacherFreeKD
from .models import build_model, count_parameters, frozen_copy
from .temperature import entropy, soften
from .train import TrainConfig, born_again, train

__version__ = "0.1.0"

__all__ = [
    "load_dataset", "Data", "Split", "BatchLoader",
    "build_model", "count_parameters", "frozen_copy",
    "soften", "entropy", "kd_loss", "distillation_loss", "soft_cross_entropy",
    "Method", "Distill", "PSKD", "CSKD", "TeacherFreeKD", "EMATeacher", "BYOT", "DLB", "LabelSmoothing", "Mixup",
    "TrainConfig", "train", "born_again", "evaluate", "predict_logits", "compare",
]  # fmt: skip

# Names that sdkit exported before its core was cut down, and where they live now. They still resolve (on first
# use, so that `import sdkit` stays light), but are not part of the core's API.
_ELSEWHERE = {
    **dict.fromkeys(["load_checkpoint", "save_checkpoint"], "sdkit.checkpoint"),
    **dict.fromkeys(["DATASETS", "Dataset", "read_idx"], "sdkit.data"),
    **dict.fromkeys(["Batch", "augment_batch"], "sdkit.loader"),
    **dict.fromkeys(
        ["accuracy", "expected_calibration_error", "reliability_bins", "evaluate_ensemble"], "sdkit.evaluate"
    ),
    **dict.fromkeys(["KDLoss", "SoftCrossEntropy", "DistillationLoss"], "sdkit.losses"),
    **dict.fromkeys(["CrossEntropy", "class_partners", "METHODS", "make_method", "TrainContext"], "sdkit.methods"),
    **dict.fromkeys(["MLP", "MODELS", "ResNet", "SmallCNN"], "sdkit.models"),
    "soften_probs": "sdkit.temperature",
    **dict.fromkeys(["Generation", "History"], "sdkit.train"),
    **dict.fromkeys(
        ["atomic_torch_save", "atomic_write_json", "is_quick", "machine_info", "pick_device", "run_mode"], "sdkit.utils"
    ),
    "summarize": "sdkit.book.compare",
}


def __getattr__(name: str):
    if name in _ELSEWHERE:
        return getattr(importlib.import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module 'sdkit' has no attribute {name!r}")
