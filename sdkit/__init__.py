"""sdkit: a small PyTorch library for (self-)distillation, companion to the book *Self-Distillation, Executed*."""

from .checkpoint import load_checkpoint, save_checkpoint
from .compare import METHODS, compare, evaluate_ensemble, summarize
from .data import DATASETS, Data, Dataset, Split, load_dataset, read_idx
from .evaluate import accuracy, evaluate, expected_calibration_error, predict_logits, reliability_bins
from .loader import Batch, BatchLoader, augment_batch
from .losses import (
    DistillationLoss,
    KDLoss,
    SoftCrossEntropy,
    distillation_loss,
    kd_loss,
    soft_cross_entropy,
)
from .methods import (
    BYOT,
    CSKD,
    DLB,
    PSKD,
    CrossEntropy,
    Distill,
    EMATeacher,
    LabelSmoothing,
    Method,
    Mixup,
    TeacherFreeKD,
    class_partners,
)
from .models import MLP, MODELS, ResNet, SmallCNN, build_model, count_parameters, frozen_copy
from .temperature import entropy, soften, soften_probs
from .train import Generation, History, TrainConfig, born_again, train
from .utils import atomic_torch_save, atomic_write_json, is_quick, machine_info, pick_device, run_mode

__version__ = "0.1.0"

__all__ = [
    "load_checkpoint", "save_checkpoint",
    "METHODS", "compare", "evaluate_ensemble", "summarize",
    "DATASETS", "Batch", "BatchLoader", "Data", "Dataset", "Split", "augment_batch", "load_dataset", "read_idx",
    "accuracy", "evaluate", "expected_calibration_error", "predict_logits", "reliability_bins",
    "DistillationLoss", "KDLoss", "SoftCrossEntropy", "distillation_loss", "kd_loss", "soft_cross_entropy",
    "CrossEntropy", "Distill", "Method", "PSKD", "CSKD", "TeacherFreeKD", "EMATeacher", "BYOT", "DLB", "LabelSmoothing",
    "Mixup", "class_partners",
    "MODELS", "MLP", "ResNet", "SmallCNN", "build_model", "count_parameters", "frozen_copy",
    "entropy", "soften", "soften_probs",
    "Generation", "History", "TrainConfig", "born_again", "train",
    "atomic_torch_save", "atomic_write_json", "is_quick", "machine_info", "pick_device", "run_mode",
]  # fmt: skip
