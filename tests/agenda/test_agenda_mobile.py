"""The agenda's screens without a window: every text they show has an English translation."""
import ast
import json
import re
from pathlib import Path

MOBILE = Path(__file__).resolve().parents[2] / "mobile"
KV_TEXT = re.compile(r"""_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*\)""")


def texts():
    found = set()
    for path in sorted((MOBILE / "screens").glob("agenda*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                found.add(node.args[0].value)
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "CATEGORIES":
                found.update(ast.literal_eval(node.value).values())
    for path in sorted((MOBILE / "screens").glob("agenda*.kv")):
        for match in KV_TEXT.finditer(path.read_text(encoding="utf-8")):
            text = match.group(1) if match.group(1) is not None else match.group(2)
            found.add(text.replace("\\'", "'").replace('\\"', '"'))
    return found


def test_every_agenda_text_has_an_english_translation():
    from mobile.i18n import ENGLISH  # the shell's words and every feature's catalogue, as the app loads them

    english = json.loads((MOBILE / "locale" / "en" / "agenda.json").read_text(encoding="utf-8"))
    shown = texts()
    assert len(shown) > 60
    assert sorted(shown - set(ENGLISH)) == []
    assert all(value.strip() for value in english.values())
