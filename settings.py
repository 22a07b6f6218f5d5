"""The service's settings, read once per container from environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TRUE_VALUES = frozenset({"true", "1", "yes"})
FALSE_VALUES = frozenset({"false", "0", "no", ""})


class ConfigurationError(ValueError):
    """An environment variable has a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    """Settings ``lambda_function`` reads from the environment. The model location is read by
    ``model_loading.model_source_from_environ``."""

    predictions_stream_name: str = "ride_predictions"
    run_id: str | None = None
    test_run: bool = False
    kinesis_endpoint_url: str | None = None
    dead_letter_queue_url: str | None = None
    sqs_endpoint_url: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read the settings; raise :class:`ConfigurationError` naming a bad variable."""
        stream_name = environ.get("PREDICTIONS_STREAM_NAME", "ride_predictions").strip()
        if not stream_name:
            raise ConfigurationError(
                "PREDICTIONS_STREAM_NAME is empty: set it to the output Kinesis stream name, "
                "or unset it to use 'ride_predictions'"
            )
        generic_endpoint = _optional(environ, "AWS_ENDPOINT_URL")
        return cls(
            predictions_stream_name=stream_name,
            run_id=_optional(environ, "RUN_ID"),
            test_run=parse_bool(environ, "TEST_RUN"),
            kinesis_endpoint_url=_optional(environ, "KINESIS_ENDPOINT_URL") or generic_endpoint,
            dead_letter_queue_url=_optional(environ, "DEAD_LETTER_QUEUE_URL"),
            sqs_endpoint_url=_optional(environ, "SQS_ENDPOINT_URL") or generic_endpoint,
        )


def parse_bool(environ: Mapping[str, str], name: str) -> bool:
    """Read a boolean variable: True/False (any case), 1/0 or yes/no; unset means False."""
    raw = environ.get(name, "")
    value = raw.strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ConfigurationError(
        f"{name}={raw!r} is not a boolean: use True or False "
        "(also accepted: true/false, 1/0, yes/no)"
    )


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None
