"""Readers of the legacy source: file trees and zips (``archive``), IHE XDM packages (``xdm``), CDA R2
documents (``cda``) and whole dossiers (``dossier``). They parse and report; they never decide where a
document goes (that is :mod:`migration.mapping`) nor write anything (that is :mod:`migration.loader`)."""
