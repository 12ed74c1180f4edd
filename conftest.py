"""Shared test set-up; the environment itself is prepared by ``siyu.core.pytest_env``."""
