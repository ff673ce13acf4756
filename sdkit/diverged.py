"""What a diverged run tells its user: :class:`TrainingDiverged` and its message (the cause and what ``train``
kept), raised by :class:`sdkit.train.DivergenceGuard`; here, apart from the loop, because a run that goes well
never calls it.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["TrainingDiverged", "raise_diverged"]


class TrainingDiverged(FloatingPointError):
    """The loss (or the weights) became NaN or infinite at ``epoch``, ``step`` (None: checked per epoch)."""

    def __init__(self, message: str, *, epoch: int, step: int | None, loss: float) -> None:
        super().__init__(message)
        self.epoch, self.step, self.loss = epoch, step, loss


def raise_diverged(guard: Any, loss: float, epoch: int, step: int | None, best: dict[str, Any] | None,
                   what: str = "") -> NoReturn:  # fmt: skip
    """Give ``guard.model`` back the weights ``train`` would have returned (``best``), then raise
    :class:`TrainingDiverged` naming the epoch, the step, the learning rate and the likely cause."""
    what = what or f"the loss is {loss}"
    T = f"the temperature T={guard.temperature}" if guard.temperature is not None else ""
    if epoch == 0 and step == 0:  # nothing was updated yet: the learning rate cannot be the cause
        cause = "The very first loss is not finite, before any update: check the data (input scale, labels)"
        cause += " and the model" + (f", and {T}" if T else "")
    else:
        cause = "The likely cause is a learning rate too high for this model: lower lr"
        cause += f", or check {T} (a small T makes the soft targets extreme)" if T else ""
        cause += ", or check the data (input scale, labels)"
    kept = " No epoch finished: the model is not trained (its weights may be NaN); build a new one."
    if best is not None:
        guard.model.load_state_dict(best)
        guard.model.eval()
        kept = f" The model holds the weights of epoch {guard.history.best_epoch}, the ones train keeps so far"
        kept += f"; the checkpoint {guard.checkpoint} still holds the last good epoch." if guard.checkpoint else "."
    where = f"epoch {epoch}, step {step}" if step is not None else f"epoch {epoch} (checked once per epoch)"
    lr = guard.optimizer.param_groups[0]["lr"]
    raise TrainingDiverged(f"training diverged: {what} at {where} (learning rate {lr:g}). {cause}.{kept}",
                           epoch=epoch, step=step, loss=loss)  # fmt: skip
