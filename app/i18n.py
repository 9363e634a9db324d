"""Replies in the caller's language: `Accept-Language: zh…` gives Simplified Chinese, anything else English.

Problem titles, details and field messages are written in English where they arise — our
services and schemas, marshmallow, webargs, Werkzeug — and translated as the problem reply
is rendered (`localise_problem`), from the gettext catalogue
`app/translations/zh/LC_MESSAGES/messages.po` through Flask-Babel. The `.po` file is
compiled in memory the first time a process needs it: no `.mo` file is built or committed.

A message carrying values has a python-format msgid, e.g. `At most %(limit)s characters.`:
the English text is matched against it and the values go into the translation (a value that
names words rather than identifiers — see TRANSLATED_VALUES — is translated too).
`code` never changes with the language.
"""
import re
from functools import cached_property
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import g, has_request_context, request
from flask_babel import Babel, Domain, force_locale, get_locale, get_translations
from flask_babel import gettext as _gettext

DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "zh")
CATALOGUE_LANGUAGE = "zh"  # the one language with a catalogue; English is the source text
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
LIST_SEPARATORS = ((" or ", "或"), (", ", "、"))
# Placeholders whose values are words to translate too; every other value (a code, a pattern, the
# choices of an enum, a field path) is what a client sends or reads literally and stays as it is.
TRANSLATED_VALUES = {"message", "recorders", "roles", "status", "kind"}
_PLACEHOLDER = re.compile(r"%\((\w+)\)([sd])")

# Messages seen without a Chinese translation (filled only when I18N_CHECK_CATALOGUE is on: tests).
UNTRANSLATED: set[str] = set()


def select_language() -> str:
    """The first language of Accept-Language (by quality) that we speak: any zh-* is zh; default en.

    A part of the app with its own choice (the staff console: Chinese unless switched) sets
    `g.language` before anything is translated.
    """
    if not has_request_context():
        return DEFAULT_LANGUAGE
    if g.get("language") in LANGUAGES:
        return g.language
    for tag, quality in request.accept_languages:
        primary = tag.replace("_", "-").split("-")[0].lower()
        if quality > 0 and primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE


class _Catalogue(Translations):
    """Translations compiled from a .po file, knowing which msgids carry values."""

    def __init__(self, po_path: Path, language: str):
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        compiled = BytesIO()
        write_mo(compiled, catalog)  # fuzzy and untranslated entries are left out
        compiled.seek(0)
        super().__init__(fp=compiled, domain="messages")
        entries = [m for m in catalog if m.id and m.string and not m.fuzzy]
        self.known = {m.id for m in entries}
        self.templates = sorted(
            ((_template_regex(m.id), m.id) for m in entries if _PLACEHOLDER.search(m.id)),
            key=lambda item: -len(_PLACEHOLDER.sub("", item[1])),  # the most specific template first
        )


def _template_regex(msgid: str) -> re.Pattern:
    parts, last = [], 0
    for match in _PLACEHOLDER.finditer(msgid):
        parts.append(re.escape(msgid[last:match.start()].replace("%%", "%")))
        name, kind = match.groups()
        parts.append(f"(?P<{name}>-?[0-9]+)" if kind == "d" else f"(?P<{name}>.+?)")
        last = match.end()
    parts.append(re.escape(msgid[last:].replace("%%", "%")))
    return re.compile("".join(parts), re.DOTALL)


class CatalogueDomain(Domain):
    """Flask-Babel's domain, reading `<dir>/<lang>/LC_MESSAGES/messages.po` and compiling it in memory."""

    def get_translations(self):
        locale = get_locale()
        if locale is None or locale.language not in LANGUAGES or locale.language == DEFAULT_LANGUAGE:
            return NullTranslations()
        if locale.language not in self.cache:
            path = TRANSLATIONS_DIR / locale.language / "LC_MESSAGES" / "messages.po"
            self.cache[locale.language] = _Catalogue(path, locale.language) if path.exists() else NullTranslations()
        return self.cache[locale.language]


class CatalogueBabel(Babel):
    @cached_property
    def domain_instance(self):
        return CatalogueDomain(domain=self.domain)


babel = CatalogueBabel()


def init_app(app) -> None:
    babel.init_app(app, default_locale=DEFAULT_LANGUAGE, locale_selector=select_language,
                   default_translation_directories=str(TRANSLATIONS_DIR))

    @app.before_request
    def _choose_language_per_request():
        g.pop("_flask_babel", None)  # Flask-Babel caches the locale on `g`, which an outer app context outlives


# ---------------------------------------------------------------- translating a message


def _lookup(text: str, catalogue) -> str | None:
    """The translation of an exact catalogue entry, or None."""
    return _gettext(text) if text in catalogue.known else None


def _translate_value(name: str, value: str, catalogue) -> str:
    """A value put into a translated template: words (a status, a role, who records) are translated,
    identifiers a client must send back as they are (choices, codes, field names) never."""
    if name not in TRANSLATED_VALUES:
        return value
    found = translate(value)
    if found != value:
        return found
    for separator, joiner in LIST_SEPARATORS:
        parts = value.split(separator)
        if len(parts) > 1:
            translated = [_lookup(p, catalogue) for p in parts]
            if all(t is not None for t in translated):
                return joiner.join(translated)
    return value


def translate(message: str) -> str:
    """`message` in the request's language; unchanged when there is no catalogue entry for it."""
    catalogue = get_translations()
    if not isinstance(catalogue, _Catalogue) or not isinstance(message, str):
        return message
    found = _lookup(message, catalogue)
    if found is not None:
        return found
    for regex, msgid in catalogue.templates:
        match = regex.fullmatch(message)
        if match:
            values = {name: _translate_value(name, value, catalogue) for name, value in match.groupdict().items()}
            return _gettext(msgid, **values)
    return message


def _has_translation(message: str) -> bool:
    catalogue = get_translations()
    if not isinstance(catalogue, _Catalogue):
        return False
    return message in catalogue.known or any(regex.fullmatch(message) for regex, _ in catalogue.templates)


def note_untranslated(*messages: str) -> None:
    """Remember each of `messages` that has no Chinese translation (see UNTRANSLATED)."""
    with force_locale(CATALOGUE_LANGUAGE):
        UNTRANSLATED.update(m for m in messages if isinstance(m, str) and m and not _has_translation(m))


def _messages(body: dict):
    for key in ("title", "detail"):
        if isinstance(body.get(key), str):
            yield body[key]
    for messages in (body.get("errors") or {}).values():
        yield from (m for m in messages if isinstance(m, str))


def localise_problem(body: dict, check_catalogue: bool = False) -> tuple[dict, str]:
    """The problem body with title, detail and field messages in the request's language, and that language."""
    language = str(get_locale() or DEFAULT_LANGUAGE) if has_request_context() else DEFAULT_LANGUAGE
    if check_catalogue:
        note_untranslated(*_messages(body))
    if language == DEFAULT_LANGUAGE:
        return body, language
    localised = dict(body)
    for key in ("title", "detail"):
        if isinstance(body.get(key), str):
            localised[key] = translate(body[key])
    if isinstance(body.get("errors"), dict):
        localised["errors"] = {field: [translate(m) for m in messages] for field, messages in body["errors"].items()}
    return localised, language
