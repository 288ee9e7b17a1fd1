"""Translators of elementwise math ops (registered with :func:`.translate.translates`)."""

from __future__ import annotations

from .translate import translates  # noqa: F401
