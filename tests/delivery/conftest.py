"""Fixtures of the delivery tests: a model logged to moto's S3 and a fresh stack per test."""

from tests.delivery.fixtures import logged_model, make_stack, proxy, stack

__all__ = ["logged_model", "make_stack", "proxy", "stack"]
