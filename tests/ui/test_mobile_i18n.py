"""Every sentence the app shows exists in English, and French stays the default."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from mobile import i18n
from mobile.api import fields

MOBILE = Path(i18n.__file__).parent
# _('...') or _("...") in .kv files; message ids never contain the other quote there.
KV_MESSAGE = re.compile(r"""_\(\s*(?:'([^']*)'|"([^"]*)")\s*\)""")


def _python_messages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "_"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def _kv_messages(path: Path) -> set[str]:
    return {single or double for single, double in KV_MESSAGE.findall(path.read_text(encoding="utf-8"))}


def _field_problem_messages() -> set[str]:
    source = Path(fields.__file__).read_text(encoding="utf-8")
    return set(re.findall(r'FieldProblem\(\s*"[a-z_]+",\s*"([^"]+)"', source))


def _messages(path: Path) -> set[str]:
    return _kv_messages(path) if path.suffix == ".kv" else _python_messages(path)


SOURCES = sorted(
    path.relative_to(MOBILE).as_posix()
    for path in [*MOBILE.rglob("*.py"), *MOBILE.rglob("*.kv")]
    if path.suffix == ".kv" or "_(" in path.read_text(encoding="utf-8")
)


@pytest.fixture(autouse=True)
def _restore_language():
    yield
    i18n.set_language(i18n.DEFAULT_LANGUAGE)


@pytest.mark.parametrize("source", SOURCES)
def test_every_message_has_an_english_translation(source):
    # One case per file, so a missing translation points at the screen that shows it.
    missing = sorted(m for m in _messages(MOBILE / source) if m not in i18n.ENGLISH)
    assert missing == []


def test_the_scan_finds_the_messages():
    assert len(_messages(MOBILE / "screens" / "activation.kv")) > 15
    assert "Veuillez patienter…" in _messages(MOBILE / "widgets.kv")
    assert "Saisissez votre mot de passe." in _messages(MOBILE / "screens" / "login.py")


def test_input_problems_have_an_english_translation():
    problems = _field_problem_messages()
    assert len(problems) >= 5
    assert sorted(p for p in problems if p not in i18n.ENGLISH) == []


def test_french_is_the_default_and_english_is_available():
    assert i18n.get_language() == "fr"
    assert i18n._("Se connecter") == "Se connecter"
    i18n.set_language("en")
    assert i18n._("Se connecter") == "Sign in"
    assert i18n._("Bonjour {name}").format(name="Marie") == "Hello Marie"


def test_unknown_message_falls_back_to_french():
    i18n.set_language("en")
    assert i18n._("Phrase sans traduction") == "Phrase sans traduction"


def test_unknown_language_is_refused():
    with pytest.raises(ValueError):
        i18n.set_language("de")


def test_format_datetime():
    assert i18n.format_datetime(None) == ""
    assert i18n.format_datetime("2026-03-04T10:05:00").startswith("le 04/03/2026 à 10:05")
    i18n.set_language("en")
    assert i18n.format_datetime("2026-03-04T10:05:00") == "on 04 Mar 2026 at 10:05"


def test_feature_catalogues_map_french_to_english(tmp_path, monkeypatch):
    for path in sorted((i18n.LOCALE_DIR / "en").glob("*.json")):
        catalogue = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(catalogue, dict), path.name
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in catalogue.items())
    # And a feature's file is picked up:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "demo.json").write_text('{"Bonjour": "Hello"}', encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    assert i18n._feature_catalogues("en") == {"Bonjour": "Hello"}
