"""What the stages on TRL's trainers share (dpo, reward_model, rloo): importing TRL, putting the
policy back as the next stage expects it, and resuming a stage from the trial's checkpoint.

A stage is resumable the same way for every TRL trainer: every `train.checkpoint_every` steps the
Trainer's own checkpoint folder (weights, optimizer, scheduler, RNG states, trainer state) goes
into the trial's checkpoint with what the stage needs besides (its series so far; a frozen
reference; the reward model it optimises against), and a killed cell unpacks it and goes on with
`Trainer.train(resume_from_checkpoint=...)`, which gives the uninterrupted training's numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

INSTALL = "pip install -e '.[preference]'"
REFERENCE_ADAPTER = "ref"  # TRL's name for the frozen copy of a LoRA adapter


def import_trl(kind: str):
    """TRL, or the one-paragraph error saying how to install it."""
    from ablate.errors import AblateError

    try:
        import trl
    except ImportError:
        raise AblateError(f"the {kind} stage needs TRL, which is not installed.", field="stages",
                          fix=f"install it with {INSTALL}.") from None
    return trl


def restore_policy(model, peft: bool) -> None:
    """The model as the next stage and the evaluators expect it: TRL's reference adapter removed
    and its fused log-prob head taken off (it patches `forward` on the instance)."""
    if peft and REFERENCE_ADAPTER in model.peft_config:
        model.delete_adapter(REFERENCE_ADAPTER)
    base = model.get_base_model() if peft else model
    if "forward" in vars(base):
        del base.forward
    model.eval()


def state_dict_copy(model) -> dict[str, Any]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def trainer_callbacks(steps: int, series: dict[str, str], history: dict[str, list[tuple[int, float]]],
                      save_checkpoint: Callable | None, extra_state: Callable[[], dict] = dict):
    """(callbacks, trained): the Trainer callbacks that record `series` (TRL's log name -> our key)
    into `history`, count what this process trained (`trained`: the step the Trainer resumed from,
    and the steps it ran here) and hand each of its checkpoints before the last step to the trial
    (`save_checkpoint`), with `extra_state()` besides."""
    from transformers import TrainerCallback

    trained = {"from": 0, "steps": 0}

    class Series(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            for name, key in series.items():
                if logs and name in logs and not any(k.startswith("eval_") for k in logs):
                    history[key].append((state.global_step, float(logs[name])))

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            trained["from"] = state.global_step  # restored from the checkpoint before training begins

        def on_step_end(self, args, state, control, **kwargs):
            trained["steps"] += 1

    class Checkpoints(TrainerCallback):
        """The Trainer's checkpoint folder (and the stage's own state) into the trial's checkpoint."""

        def on_save(self, args, state, control, **kwargs):
            if save_checkpoint is None or state.global_step >= steps:
                return
            saved = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            save_checkpoint(state.global_step, lambda: {
                "step": state.global_step, "history": {k: list(v) for k, v in history.items()},
                "trainer_files": {str(p.relative_to(saved)): p.read_bytes() for p in saved.rglob("*") if p.is_file()},
                **extra_state()})

    return [Series(), Progress(), Checkpoints()], trained


def checkpoint_arguments(save_checkpoint: Callable | None, every: int) -> dict[str, Any]:
    """The Trainer arguments that make it write the checkpoints `trainer_callbacks` hands on."""
    return {"save_strategy": "steps" if save_checkpoint else "no", "save_steps": every, "save_total_limit": 1,
            "save_only_model": False}


def resumed_history(resume: dict | None, history: dict[str, list[tuple[int, float]]]) -> None:
    """The series logged before the checkpoint, put back in `history`."""
    for key, points in (resume or {}).get("history", {}).items():
        history[key] = list(points)


def unpack_checkpoint(resume: dict | None, output_dir: str | Path) -> str | None:
    """The Trainer's checkpoint folder written back from the trial's checkpoint, for
    `resume_from_checkpoint`; None when the stage starts from the beginning."""
    if resume is None:
        return None
    folder = Path(output_dir) / f"checkpoint-{resume['step']}"
    for name, content in resume["trainer_files"].items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return str(folder)
