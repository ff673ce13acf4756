"""sdkit: a small PyTorch library for (self-)distillation, companion to the book *Self-Distillation, Executed*.

The core, in reading order: datasets (:mod:`sdkit.datasets`) become tensors and batches (:mod:`sdkit.data`, or a
DataLoader through :mod:`sdkit.dataloader`); models and devices (:mod:`sdkit.models`); temperature and losses
(:mod:`sdkit.losses`); the method interface, classic distillation and born-again networks (:mod:`sdkit.methods`),
self-distillation methods (:mod:`sdkit.self_kd`) and teacher-free baselines (:mod:`sdkit.regularizers`); the
training loop (:mod:`sdkit.train`) with checkpoints (:mod:`sdkit.checkpoint`) and ``torchrun``
(:mod:`sdkit.distributed`); evaluation (:mod:`sdkit.evaluate`); :func:`compare` and its registry of methods.
``sdkit.extras`` holds robustness, compression and tabular tools; ``sdkit.book`` what only the book's chapters use.
"""

import importlib

from .compare import compare
from .data import BatchLoader, Data, Split
from .datasets import load_dataset
from .evaluate import evaluate, predict_logits
from .losses import distillation_loss, entropy, kd_loss, soft_cross_entropy, soften
from .methods import Distill, Method, born_again
from .models import build_model, count_parameters, frozen_copy
from .regularizers import LabelSmoothing, Mixup, TeacherFreeKD
from .self_kd import BYOT, CSKD, DLB, PSKD, EMATeacher
from .train import TrainConfig, train

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
    **dict.fromkeys(["DATASETS", "read_idx", "DamagedFileError"], "sdkit.datasets"),
    **dict.fromkeys(["Batch", "augment_batch", "Dataset"], "sdkit.data"),
    **dict.fromkeys(
        ["accuracy", "expected_calibration_error", "reliability_bins", "evaluate_ensemble"], "sdkit.evaluate"
    ),
    **dict.fromkeys(["KDLoss", "SoftCrossEntropy", "DistillationLoss"], "sdkit.losses"),
    **dict.fromkeys(["CrossEntropy", "TrainContext", "Generation"], "sdkit.methods"),
    **dict.fromkeys(["METHODS", "METHOD_CLASSES", "make_method"], "sdkit.compare"),
    "class_partners": "sdkit.self_kd",
    **dict.fromkeys(["MLP", "MODELS", "ResNet", "SmallCNN", "pick_device"], "sdkit.models"),
    "soften_probs": "sdkit.losses",
    **dict.fromkeys(["History", "TrainingDiverged"], "sdkit.train"),
    **dict.fromkeys(["atomic_torch_save", "atomic_write_json", "is_quick", "machine_info", "run_mode"], "sdkit.utils"),
}


def __getattr__(name: str):
    if name in _ELSEWHERE:
        return getattr(importlib.import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module 'sdkit' has no attribute {name!r}")
