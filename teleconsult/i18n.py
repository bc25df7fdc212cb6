"""French-first translations for pages, errors and mails: flat catalogs in ``web/locales/<lang>.json``.

French is the default; English is the other language. Catalogs are read once at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"


class Catalogs:
    def __init__(self, locales_dir: Path):
        self._catalogs: dict[str, dict[str, str]] = {}
        for lang in LANGUAGES:
            path = locales_dir / f"{lang}.json"
            self._catalogs[lang] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def catalog(self, lang: str) -> Mapping[str, str]:
        return self._catalogs.get(lang) or self._catalogs[DEFAULT_LANGUAGE]

    def text(self, lang: str, key: str) -> str:
        return self.catalog(lang).get(key) or self._catalogs[DEFAULT_LANGUAGE].get(key, key)


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins, then the ``lang`` cookie, then Accept-Language; French otherwise."""
    for choice in (query, cookie):
        if choice in LANGUAGES:
            return choice
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE


def other(lang: str) -> str:
    return "en" if lang == "fr" else "fr"


PARIS = "Europe/Paris"
_FORMATS = {"fr": "%d/%m/%Y à %H:%M", "en": "%d %b %Y, %H:%M"}


def format_paris(value: datetime | None, lang: str) -> str | None:
    """A UTC time as a Paris wall-clock string in the page's language."""
    if value is None:
        return None
    return value.astimezone(ZoneInfo(PARIS)).strftime(_FORMATS.get(lang, _FORMATS[DEFAULT_LANGUAGE]))
