"""Files the app hands to the patient (a document's original, an attachment, the access history, a calendar
file): kept in the app's own folder, then handed to the platform — "Ouvrir" (open-with) and "Partager" (the
share sheet) — instead of showing a path the patient can do nothing with.

- Android: an ``ACTION_VIEW`` / ``ACTION_SEND`` intent (the system's chooser) for a ``content://`` URI from the
  app's FileProvider (``org.kivy.android.fileprovider`` in python-for-android builds), through pyjnius.
- A desktop (and any platform without the above): the default application for the file, through the standard
  library's ``webbrowser`` (``xdg-open``, ``open``, ``startfile``; the ``BROWSER`` variable chooses another
  one), and "Partager" opens the folder holding the file.

No Kivy here except ``kivy.utils.platform``: the screens show the file's name and the two buttons
(``FileReadyCard`` in ``widgets.kv``).
"""

from __future__ import annotations

import logging
import mimetypes
import webbrowser
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ANDROID_AUTHORITY_SUFFIX = ".fileprovider"


@dataclass(frozen=True)
class KeptFile:
    path: Path
    mime: str

    @property
    def name(self) -> str:
        return self.path.name


def _platform() -> str:
    from kivy.utils import platform

    return platform


def keep(folder: Path, name: str, data: bytes, mime: str | None = None) -> KeptFile:
    """Write ``data`` as ``folder/name`` without overwriting an earlier file of the same name."""
    folder.mkdir(parents=True, exist_ok=True)
    safe = Path(name).name or "fichier"
    target = folder / safe
    stem, suffix, n = target.stem, target.suffix, 1
    while target.exists():
        n += 1
        target = folder / f"{stem} ({n}){suffix}"
    target.write_bytes(data)
    return KeptFile(target, mime or mimetypes.guess_type(target.name)[0] or "application/octet-stream")


def can_share() -> bool:
    """A share sheet exists (a phone); elsewhere "Partager" shows the file in its folder."""
    return _platform() == "android"


def _android_intent(kept: KeptFile, action: str) -> bool:
    try:
        from jnius import autoclass, cast  # type: ignore[import-not-found]
    except ImportError:
        return False
    activity = autoclass("org.kivy.android.PythonActivity").mActivity
    intent_class = autoclass("android.content.Intent")
    file_provider = autoclass("androidx.core.content.FileProvider")
    java_file = autoclass("java.io.File")(str(kept.path))
    uri = file_provider.getUriForFile(activity, activity.getPackageName() + ANDROID_AUTHORITY_SUFFIX, java_file)
    intent = intent_class(getattr(intent_class, action))
    if action == "ACTION_SEND":
        intent.setType(kept.mime)
        intent.putExtra(intent_class.EXTRA_STREAM, cast("android.os.Parcelable", uri))
    else:
        intent.setDataAndType(uri, kept.mime)
    intent.addFlags(intent_class.FLAG_GRANT_READ_URI_PERMISSION)
    activity.startActivity(intent_class.createChooser(intent, None))
    return True


def open_uri(uri: str) -> bool:
    """A link for another application (``otpauth://`` for the authenticator): ACTION_VIEW on Android, the
    desktop's handler elsewhere."""
    try:
        if _platform() == "android":
            from jnius import autoclass  # type: ignore[import-not-found]

            intent_class = autoclass("android.content.Intent")
            intent = intent_class(intent_class.ACTION_VIEW, autoclass("android.net.Uri").parse(uri))
            autoclass("org.kivy.android.PythonActivity").mActivity.startActivity(intent)
            return True
        return webbrowser.open(uri)
    except Exception:  # noqa: BLE001
        log.warning("could not open a link", exc_info=True)
        return False


def open_file(kept: KeptFile) -> bool:
    """Open the file with the application the platform chooses; False when none could be asked."""
    try:
        if _platform() == "android":
            return _android_intent(kept, "ACTION_VIEW")
        return webbrowser.open(kept.path.resolve().as_uri())
    except Exception:  # noqa: BLE001 - the platform refused: the screen says the file stays in Carnet
        log.warning("could not open a kept file", exc_info=True)
        return False


def share_file(kept: KeptFile) -> bool:
    """The share sheet on a phone; on a desktop, the folder holding the file."""
    try:
        if _platform() == "android":
            return _android_intent(kept, "ACTION_SEND")
        return webbrowser.open(kept.path.resolve().parent.as_uri())
    except Exception:  # noqa: BLE001
        log.warning("could not share a kept file", exc_info=True)
        return False
