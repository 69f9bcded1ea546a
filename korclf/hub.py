"""Publish a finished run to the Hugging Face Hub once, after the model folder is complete on disk.

The stock ``Trainer`` with ``push_to_hub=True`` creates the repo in ``__init__`` (a network call before any
training) and uploads at every save. korclf instead takes the push settings off the arguments before the
Trainer is built (:func:`defer_push`) and, at the end, pushes the finished folder (model, tokenizer, code,
model card) with the Trainer's own ``push_to_hub`` (:func:`publish`). A failed push is one logged message:
the model is already saved locally, and the message says how to upload it later.
"""

from __future__ import annotations

import importlib
import logging
import os
import shlex
from dataclasses import dataclass, field
from typing import Optional

from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers.trainer_utils import HubStrategy

from .errors import KorclfError

logger = logging.getLogger(__name__)

# What the Trainer's push_to_hub leaves out of the upload (its own `ignore_patterns`).
TRAINER_IGNORE_PATTERNS = ("_*", "checkpoint-*")


@dataclass(frozen=True)
class PushSettings:
    """The user's Hub settings, held back from ``TrainingArguments`` until the end of training.

    The token stays out of the arguments so that ``training_args.bin``, which is uploaded, never holds it.
    """

    enabled: bool
    repo_id: Optional[str] = None
    token: Optional[str] = field(default=None, repr=False)


def _network_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the Hub could not be reached or refused": OSError covers the Hub's HTTP, offline
    and missing-token errors; the HTTP client's transport errors (connection refused, timeouts) are not OSErrors.
    """
    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def defer_push(training_args) -> PushSettings:
    """Take the push settings off ``training_args`` so the Trainer does not touch the network while training.

    Call before building the Trainer; pass the result to :func:`publish` after the final save. A missing or
    malformed ``hub_model_id`` stops the run here, before training, rather than after it.
    """
    if not training_args.push_to_hub:
        return PushSettings(enabled=False)
    repo_id = training_args.hub_model_id
    if not repo_id:
        raise KorclfError("config key 'hub_model_id': push_to_hub: true needs the Hub repo to publish to, "
                          "e.g. 'your-name/korclf-nsmc'")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise KorclfError(f"config key 'hub_model_id': {repo_id!r} is not a Hub repo id "
                          f"({str(error).splitlines()[0]})") from None
    if HubStrategy(training_args.hub_strategy) in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
        logger.warning("hub_strategy '%s': korclf pushes the finished model once, at the end of training; "
                       "checkpoints are not uploaded", training_args.hub_strategy)
    if hub_constants.is_offline_mode():
        logger.warning("HF_HUB_OFFLINE=1: the push to '%s' at the end of training will fail; the model will "
                       "still be saved in '%s'", repo_id, training_args.output_dir)
    settings = PushSettings(enabled=True, repo_id=repo_id, token=training_args.hub_token)
    training_args.push_to_hub = False
    training_args.hub_token = None
    return settings


def push_later_command(output_dir: str, repo_id: str) -> str:
    """The ``hf`` command that uploads ``output_dir`` as :func:`publish` would."""
    excludes = " ".join(f"--exclude {shlex.quote(pattern)}" for pattern in TRAINER_IGNORE_PATTERNS)
    return f"hf upload {shlex.quote(repo_id)} {shlex.quote(str(output_dir))} . {excludes}"


def publish(trainer, push_settings: PushSettings, output_dir: str,
            commit_message: str = "korclf: end of training") -> dict:
    """Push ``output_dir`` to the Hub with ``trainer.push_to_hub``; never raises for network trouble.

    Call on every process (the Trainer uploads from the main one) after ``trainer.save_model()`` and the model
    card. Returns ``{"status": "pushed" | "failed" | "skipped", "repo_id", "url", "message"}``; a failure is
    logged as one line that says where the model is and how to push it later.
    """
    if not push_settings.enabled:
        return {"status": "skipped", "repo_id": None, "url": None, "message": "push_to_hub is off"}
    args = trainer.args
    if os.path.abspath(output_dir) != os.path.abspath(args.output_dir):
        raise ValueError(f"publish: output_dir '{output_dir}' is not the Trainer's output_dir '{args.output_dir}'")
    repo_id = push_settings.repo_id
    args.hub_model_id = repo_id
    # push_to_hub would replace korclf's README.md with the Trainer's generic card: skip that one step.
    trainer.create_model_card = lambda *args, **kwargs: None
    try:
        commit = trainer.push_to_hub(commit_message=commit_message, token=push_settings.token)
    except _network_errors() as error:
        detail = (str(error).strip().splitlines() or [""])[0]
        message = str(KorclfError(
            f"could not push to the Hugging Face Hub repo '{repo_id}' ({type(error).__name__}: {detail}). "
            f"The model is saved locally in '{output_dir}'; push it later with: "
            f"{push_later_command(output_dir, repo_id)}"
        ))
        if trainer.is_world_process_zero():
            logger.error(message)
        return {"status": "failed", "repo_id": repo_id, "url": None, "message": message}
    finally:
        del trainer.create_model_card
    if not trainer.is_world_process_zero():
        return {"status": "skipped", "repo_id": repo_id, "url": None, "message": "not the main process"}
    url = getattr(commit, "commit_url", None) or f"{hub_constants.ENDPOINT}/{trainer.hub_model_id or repo_id}"
    logger.info("pushed '%s' to %s", output_dir, url)
    return {"status": "pushed", "repo_id": trainer.hub_model_id or repo_id, "url": url, "message": None}


__all__ = ["PushSettings", "defer_push", "publish", "push_later_command"]
