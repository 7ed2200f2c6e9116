"""One dossier of the legacy source: ``<CARNET_LEGACY_DIR>/<NIR>/`` holding XDM packages (zips or
folders, at any depth), loose CDA documents and an optional ``settings.json``.

:func:`scan` lists the dossier's *items* in a stable order, each with a stable ``source`` key relative to
the dossier (zip members as ``package.zip!/path``): that key is what the import journal remembers, so a
re-run recognises what it already did. Reading is lazy: an item's bytes are read when it is imported.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from migration.readers import xdm
from migration.readers.archive import DEFAULT_LIMITS, ArchiveRefused, DirFiles, Limits, PackageFiles, ZipFiles

SETTINGS_NAME = "settings.json"
_REFERENCE = re.compile(rb"<(?:\w+:)?reference\s+value\s*=\s*[\"']([^\"'#][^\"']*)[\"']")


@dataclass
class SourceItem:
    source: str
    kind: str                                   # settings | xdm | cda | unsupported | refused
    package: PackageFiles | None = None
    name: str | None = None                     # package-relative file name
    entry: xdm.XdmDocument | None = None
    submission: xdm.Submission | None = None
    refusal: tuple[str, str] | None = None      # (reason, explanation) decided by the reader
    companions: list[str] = field(default_factory=list)  # package-relative files a level-1 CDA references

    def read(self) -> bytes:
        assert self.package is not None and self.name is not None
        return self.package.read(self.name)

    @property
    def loader(self) -> Callable[[], bytes]:
        return self.read


def _is_xml_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() == ".xml"


def _items_of(files: PackageFiles, prefix: str, skip: set[str]) -> list[SourceItem]:
    names = [n for n in files.names() if n not in skip]
    items: list[SourceItem] = []
    claimed: set[str] = set()
    for meta in xdm.find_subsets(names):
        subset = xdm.read_subset(files, meta)
        claimed.add(meta)
        folder = subset.folder
        claimed.update(n for n in names if PurePosixPath(n).parent.as_posix() == (folder or "."))
        if subset.refusal is not None:
            items.append(SourceItem(prefix + meta, "refused", files, meta, refusal=subset.refusal))
            continue
        for doc in subset.documents:
            if doc.file is None:
                key = f"{prefix}{meta}#{doc.entry.entry_id or doc.entry.unique_id or '?'}"
                items.append(SourceItem(key, "refused", files, None, doc, subset.submission,
                                        refusal=("xdm_document_missing", "no file matches the entry")))
            else:
                items.append(SourceItem(prefix + doc.file, "xdm", files, doc.file, doc, subset.submission))
        for name in subset.unreferenced:
            items.append(SourceItem(prefix + name, "unsupported", files, name,
                                    refusal=("xdm_unreferenced_file", "a file of the subset no entry describes")))
    rest = [n for n in names if n not in claimed and not xdm._ignorable(n)]
    # Files a loose level-1 CDA points to (nonXMLBody/text/reference) belong to that CDA.
    companions: dict[str, list[str]] = {}
    lower = {n.lower(): n for n in rest}
    for name in rest:
        if not _is_xml_name(name) or files.size(name) > DEFAULT_LIMITS.max_file_bytes:
            continue
        try:
            head = files.read(name)
        except (ArchiveRefused, OSError):  # damaged: refused on its own when imported as an item
            continue
        if b"nonXMLBody" not in head:
            continue
        for ref in _REFERENCE.findall(head):
            target = _sibling(name, ref.decode("utf-8", "replace"))
            if target and target.lower() in lower and lower[target.lower()] != name:
                companions.setdefault(name, []).append(lower[target.lower()])
    companion_files = {c for cs in companions.values() for c in cs}
    for name in rest:
        if name in companion_files:
            continue
        if _is_xml_name(name):
            items.append(SourceItem(prefix + name, "cda", files, name, companions=companions.get(name, [])))
        else:
            suffix = PurePosixPath(name).suffix.lower() or "(none)"
            items.append(SourceItem(prefix + name, "unsupported", files, name,
                                    refusal=("unsupported_file", f"neither a CDA document nor part of an XDM "
                                                                 f"package ({suffix})")))
    return items


def _sibling(name: str, ref: str) -> str | None:
    from migration.readers.archive import safe_member_name

    if "://" in ref or ref.startswith(("/", "\\")):
        return None
    parent = PurePosixPath(name).parent.as_posix()
    return safe_member_name(ref if parent == "." else f"{parent}/{ref}")


def scan(dossier: Path, limits: Limits = DEFAULT_LIMITS) -> list[SourceItem]:
    """Every item of the dossier, settings first, then in source order."""
    items: list[SourceItem] = []
    try:
        tree = DirFiles(dossier, label=dossier.name, limits=limits)
    except ArchiveRefused as exc:
        return [SourceItem(".", "refused", refusal=(exc.reason, exc.explanation))]
    names = tree.names()
    settings = [n for n in names if n.lower() == SETTINGS_NAME]
    for name in settings:
        items.append(SourceItem(name, "settings", tree, name))
    zips = [n for n in names if n.lower().endswith(".zip")]
    for name, reason in tree.skipped:
        items.append(SourceItem(name, "refused", refusal=(reason, "not a regular file")))
    items.extend(_items_of(tree, "", set(settings) | set(zips)))
    for name in zips:
        try:
            package = ZipFiles(dossier / name, label=name, limits=limits)
        except ArchiveRefused as exc:
            items.append(SourceItem(name, "refused", refusal=(exc.reason, exc.explanation)))
            continue
        inner = [n for n in package.names() if n.lower().endswith(".zip")]
        for n in inner:
            items.append(SourceItem(f"{name}!/{n}", "unsupported", package, n,
                                    refusal=("nested_archive", "an archive inside an archive is not opened")))
        items.extend(_items_of(package, f"{name}!/", set(inner)))
    return items
