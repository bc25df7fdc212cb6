"""Jinja2 templates for pages and mails: the only home of jinja2.

Pages are rendered by aiohttp_jinja2 from ``page_loader``; mails by ``MailTemplates``, strict (a missing value is
an error, never an empty string) and escaped in their HTML parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2


def page_loader(directory: Path) -> jinja2.BaseLoader:
    return jinja2.FileSystemLoader(directory)


class MailTemplates:
    def __init__(self, directory: Path) -> None:
        self._environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        return self._environment.get_template(name).render(context)
