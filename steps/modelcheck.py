"""Weights read from the volume checked against the model they are loaded into (test-resnet and a resume alike)."""

from __future__ import annotations

from typing import Any

from steps import errors, schemas

NOTHING_LOADED = "use a checkpoint train-resnet published for ResNet-18 on CIFAR-10 (nothing was loaded)"


def check_weights(model: Any, state_dict: dict[str, Any], source: str) -> None:
    """Refuse weights that are not exactly the model's tensors, or that are not finite.

    Each tensor must be there, of its shape and dtype, with no other. mmengine loads a state dict leniently (a
    warning for missing keys), so an empty or foreign weights file would evaluate, or go on training, an untrained
    model and publish its result as if it were the run's. A tensor holding NaN or an infinity (a diverged
    training's) is refused too: nothing computed from it would be a result.

    Raises:
        IntegrityError: naming the first missing, unexpected or misshapen tensor and how many there are, or the
            first tensor that is not finite.
    """
    source = schemas.printable(source, 1024)
    model = model.module if hasattr(model, "module") else model
    expected = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    found = {k: (tuple(v.shape), v.dtype) for k, v in state_dict.items()}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or extra or wrong:
        if missing:
            first = f"missing {missing[0]!r}"
        elif extra:
            first = f"unexpected {extra[0]!r}"
        else:
            first = f"{wrong[0]!r} is {found[wrong[0]]}, the model's is {expected[wrong[0]]}"
        raise errors.IntegrityError(
            f"{source} is not this model's weights: of its {len(expected)} tensors {len(missing)} missing, "
            f"{len(extra)} unexpected, {len(wrong)} of another shape or type ({first})",
            hint=NOTHING_LOADED,
        )
    name = first_non_finite(state_dict)
    if name is not None:
        raise errors.IntegrityError(
            f"{source} holds a tensor that is not finite ({name!r} has NaN or an infinity)",
            hint="a diverged training's weights: rerun train-resnet on a new run directory, e.g. with a lower "
            "--lr (nothing was loaded)",
        )


def first_non_finite(state_dict: dict[str, Any]) -> str | None:
    """The name of the first floating-point tensor of ``state_dict`` holding NaN or an infinity, or None."""
    return next((k for k, t in state_dict.items() if t.is_floating_point() and not bool(t.isfinite().all())), None)
