"""Files of a package, whether a folder or a zip, behind one small interface, with the zip defences.

A zip is checked whole before anything is read: entry count, names (absolute paths, ``..``, drive
letters, backslashes, NUL), declared sizes and compression ratios; then every read enforces the real
size while decompressing, since the declared one may lie. An entry whose data does not match what the
archive says of it (a size that lies, a bad CRC-32, a truncated or garbled stream) is refused on its
own (``zip_entry_corrupt``): the caller sets that one file aside and reads the others. A folder is
walked without following symbolic links. Refusals carry a stable reason code.
"""
from __future__ import annotations

import os
import stat
import zipfile
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Limits:
    max_entries: int = 20_000
    max_file_bytes: int = 64 * 1024 * 1024          # one document (a CDA with a large PDF)
    max_total_bytes: int = 2 * 1024 * 1024 * 1024   # one package, uncompressed
    max_ratio: int = 100                            # uncompressed / compressed, for entries over 1 MB
    ratio_floor_bytes: int = 1024 * 1024


DEFAULT_LIMITS = Limits()


class ArchiveRefused(ValueError):
    def __init__(self, reason: str, explanation: str) -> None:
        super().__init__(f"{reason}: {explanation}")
        self.reason = reason
        self.explanation = explanation


def safe_member_name(name: str) -> str | None:
    """The normalised relative POSIX name, or None if the name tries to leave the package."""
    if not name or "\x00" in name or "\\" in name:
        return None
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        return None
    return "/".join(parts)


class PackageFiles(ABC):
    """A read-only set of named files (relative POSIX paths): a folder (DirFiles) or a zip (ZipFiles)."""

    label: str

    @abstractmethod
    def names(self) -> list[str]: ...

    @abstractmethod
    def size(self, name: str) -> int: ...

    @abstractmethod
    def read(self, name: str) -> bytes: ...


class DirFiles(PackageFiles):
    def __init__(self, root: Path, label: str, limits: Limits = DEFAULT_LIMITS,
                 exclude: frozenset[str] = frozenset()) -> None:
        self.root = root
        self.label = label
        self.limits = limits
        self._sizes: dict[str, int] = {}
        self.skipped: list[tuple[str, str]] = []  # (name, reason): symlinks, special files
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(root)
            for fn in sorted(filenames):
                rel = (rel_dir / fn).as_posix()
                if rel in exclude:
                    continue
                st = os.lstat(Path(dirpath) / fn)
                if stat.S_ISLNK(st.st_mode):
                    self.skipped.append((rel, "symlink_refused"))
                elif not stat.S_ISREG(st.st_mode):
                    self.skipped.append((rel, "special_file_refused"))
                else:
                    self._sizes[rel] = st.st_size
            if len(self._sizes) > limits.max_entries:
                raise ArchiveRefused("too_many_files", f"more than {limits.max_entries} files")

    def names(self) -> list[str]:
        return sorted(self._sizes)

    def size(self, name: str) -> int:
        return self._sizes[name]

    def read(self, name: str) -> bytes:
        if self._sizes[name] > self.limits.max_file_bytes:
            raise ArchiveRefused("file_too_large", f"{self._sizes[name]} bytes, limit {self.limits.max_file_bytes}")
        path = self.root / name
        # Opened without following a link swapped in since the walk.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(self.limits.max_file_bytes + 1)
        if len(data) > self.limits.max_file_bytes:
            raise ArchiveRefused("file_too_large", f"more than {self.limits.max_file_bytes} bytes")
        return data


class ZipFiles(PackageFiles):
    def __init__(self, path: Path, label: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.label = label
        self.limits = limits
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArchiveRefused("zip_unreadable", type(exc).__name__) from None
        with zf:
            infos = zf.infolist()
            if len(infos) > limits.max_entries:
                raise ArchiveRefused("zip_too_many_entries", f"{len(infos)} entries, limit {limits.max_entries}")
            self._members: dict[str, zipfile.ZipInfo] = {}
            total = 0
            for info in infos:
                name = safe_member_name(info.filename.rstrip("/") if info.is_dir() else info.filename)
                if name is None:
                    raise ArchiveRefused("zip_path_traversal", "an entry name leaves the package (absolute or '..')")
                if info.is_dir():
                    continue
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise ArchiveRefused("zip_symlink", "the archive contains a symbolic link")
                if info.flag_bits & 0x1:
                    raise ArchiveRefused("zip_encrypted", "encrypted entries cannot be read")
                if name.lower() in {n.lower() for n in self._members}:
                    raise ArchiveRefused("zip_duplicate_name", "two entries have the same name")
                if info.file_size > limits.max_file_bytes:
                    raise ArchiveRefused("zip_entry_too_large",
                                         f"an entry declares {info.file_size} bytes, limit {limits.max_file_bytes}")
                if (info.file_size > limits.ratio_floor_bytes
                        and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
                    raise ArchiveRefused("zip_bomb", f"compression ratio above {limits.max_ratio}:1")
                total += info.file_size
                if total > limits.max_total_bytes:
                    raise ArchiveRefused("zip_bomb", f"more than {limits.max_total_bytes} bytes uncompressed")
                self._members[name] = info

    def names(self) -> list[str]:
        return sorted(self._members)

    def size(self, name: str) -> int:
        return self._members[name].file_size

    def read(self, name: str) -> bytes:
        info = self._members[name]
        limit = min(self.limits.max_file_bytes, max(info.file_size, 0))
        chunks: list[bytes] = []
        got = 0
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(info) as fh:
                while True:
                    chunk = fh.read(64 * 1024)
                    if not chunk:
                        break
                    got += len(chunk)
                    # The declared size may lie: stop as soon as the real one goes past it.
                    if got > limit:
                        raise ArchiveRefused("zip_bomb", "an entry inflates beyond its declared size")
                    chunks.append(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
            # zipfile checks the CRC-32 at the declared size: an entry whose size or data lies fails here
            # ("Bad CRC-32"), as do a truncated stream and an unknown compression method
            if isinstance(exc, ArchiveRefused):
                raise
            raise ArchiveRefused("zip_entry_corrupt", f"{type(exc).__name__}: {str(exc)[:120]}") from None
        return b"".join(chunks)
