"""A bot's options as container labels, and back (the one place that knows the format).

Only what the bot's options set is stored: no ``mcp.image`` label means the
configured image, no ``mcp.resource.*`` labels the configured limits. So a
Manager with another config still reads a bot's own choices back, and a bot
without options follows the config.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs

from . import errors, naming
from .config import ManagerConfig, normalize_image_ref
from .types import BotOptions, ResourceLimits

__all__ = [
    "Resolved",
    "option_labels",
    "options_of",
    "resolve",
    "strip_options",
    "with_options",
]

_LIMIT_FIELDS = ("cpu_millicores", "memory_bytes", "pids", "storage_bytes")


@attrs.frozen
class Resolved:
    """The image, env and limits a bot's container is made with (config and options merged)."""

    image_ref: str
    env: tuple[str, ...]
    limits: ResourceLimits


def option_labels(options: BotOptions) -> dict[str, str]:
    """The labels that store ``options`` (none for an empty field)."""
    labels: dict[str, str] = {}
    if options.image:
        labels[naming.OPTION_IMAGE_LABEL] = options.image
    if options.env:
        labels[naming.OPTION_ENV_LABEL] = json.dumps(list(options.env))
    if options.limits is not None:
        for field in _LIMIT_FIELDS:
            labels[naming.RESOURCE_LABEL_PREFIX + field] = str(getattr(options.limits, field))
    return labels


def options_of(labels: Mapping[str, str], what: str = "container") -> BotOptions:
    """The options stored in ``labels``; FailedPrecondition if they were tampered with."""
    try:
        env = json.loads(labels.get(naming.OPTION_ENV_LABEL, "[]"))
        limits = None
        if any(naming.RESOURCE_LABEL_PREFIX + f in labels for f in _LIMIT_FIELDS):
            limits = ResourceLimits(
                **{f: int(labels.get(naming.RESOURCE_LABEL_PREFIX + f, "0")) for f in _LIMIT_FIELDS}
            )
        return BotOptions(
            image=labels.get(naming.OPTION_IMAGE_LABEL, ""),
            env=tuple(env) if isinstance(env, list) else env,
            limits=limits,
        )
    except (ValueError, errors.InvalidArgument) as exc:
        raise errors.FailedPrecondition(f"{what}: unreadable option labels: {exc}") from exc


def strip_options(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` without any option label."""
    return {k: v for k, v in labels.items() if k not in naming.OPTION_LABEL_KEYS}


def with_options(labels: Mapping[str, str], options: BotOptions) -> dict[str, str]:
    """``labels`` with their option labels replaced by those of ``options``."""
    return {**strip_options(labels), **option_labels(options)}


def image_of(config: ManagerConfig, options: BotOptions) -> str:
    """The image reference a bot with ``options`` is made from."""
    if not options.image:
        return config.image_ref()
    if config.registry:
        return f"{config.registry}/{options.image}"
    return normalize_image_ref(options.image)


def resolve(config: ManagerConfig, options: BotOptions) -> Resolved:
    """What a bot with ``options`` runs: its image, env after the config's, its limits."""
    return Resolved(
        image_ref=image_of(config, options),
        env=options.env,
        limits=config.limits if options.limits is None else options.limits,
    )
