"""Structured JSON logs and CloudWatch embedded-metric-format metrics, through Powertools.

Powertools reads ``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE`` and
``POWERTOOLS_LOG_LEVEL`` (or ``LOG_LEVEL``); the defaults below apply when they are unset.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

SERVICE_NAME = os.getenv("POWERTOOLS_SERVICE_NAME", "stream-model-duration")
METRICS_NAMESPACE = os.getenv("POWERTOOLS_METRICS_NAMESPACE", "StreamModelDuration")

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(service=SERVICE_NAME, namespace=METRICS_NAMESPACE)
