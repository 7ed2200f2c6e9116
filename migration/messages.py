"""Patient-facing texts of the legacy import: why an item was set aside, in French and English."""
from backend.i18n import register_messages

REASONS = {
    "identity_other_person": ("Ce document porte l'identifiant national de santé d'une autre personne.",
                              "This document carries another person's national health identifier."),
    "identity_unlisted": ("Ce document n'est identifié que par un ancien identifiant (INS-C ou NIA) qui ne "
                          "vous est pas rattaché.", "This document is identified only by a legacy identifier "
                          "(INS-C or NIA) not linked to you."),
    "identity_missing": ("Ce document ne porte aucun identifiant national de santé.",
                         "This document carries no national health identifier."),
    "xml_entities": ("Fichier refusé par sécurité (entités XML).", "File refused for safety (XML entities)."),
    "xml_external_dtd": ("Fichier refusé par sécurité (DTD externe).", "File refused for safety (external DTD)."),
    "xml_too_large": ("Fichier trop volumineux.", "File too large."),
    "xml_too_deep": ("Fichier refusé par sécurité (imbrication excessive).", "File refused for safety (nesting)."),
    "xml_malformed": ("Fichier XML illisible.", "Unreadable XML file."),
    "xml_empty": ("Fichier vide.", "Empty file."),
    "not_cda": ("Ce fichier n'est pas un document médical CDA.", "This file is not a CDA medical document."),
    "cda_wrong_namespace": ("Document CDA mal formé.", "Malformed CDA document."),
    "xslt_without_cda": ("Feuille de style sans document.", "A style sheet without a document."),
    "cda_no_body": ("Document sans contenu.", "Document without content."),
    "cda_empty_body": ("Document au contenu vide.", "Document with empty content."),
    "technical_signature": ("Signature électronique d'un envoi, pas un document.",
                            "Electronic signature of a submission, not a document."),
    "technical_document": ("Document technique, pas un document médical.", "Technical document, not medical."),
    "zip_bomb": ("Archive refusée par sécurité (taille décompressée excessive).",
                 "Archive refused for safety (excessive uncompressed size)."),
    "zip_path_traversal": ("Archive refusée par sécurité (chemin de fichier dangereux).",
                           "Archive refused for safety (dangerous file path)."),
    "zip_symlink": ("Archive refusée par sécurité (lien symbolique).", "Archive refused for safety (symbolic link)."),
    "zip_unreadable": ("Archive illisible.", "Unreadable archive."),
    "zip_encrypted": ("Archive chiffrée illisible.", "Encrypted archive."),
    "zip_too_many_entries": ("Archive contenant trop de fichiers.", "Archive with too many files."),
    "zip_entry_too_large": ("Fichier trop volumineux dans l'archive.", "File too large in the archive."),
    "zip_duplicate_name": ("Archive ambiguë (noms en double).", "Ambiguous archive (duplicate names)."),
    "nested_archive": ("Archive dans une archive : non ouverte.", "Archive inside an archive: not opened."),
    "file_too_large": ("Fichier trop volumineux.", "File too large."),
    "symlink_refused": ("Lien symbolique ignoré par sécurité.", "Symbolic link ignored for safety."),
    "special_file_refused": ("Fichier spécial ignoré.", "Special file ignored."),
    "unsupported_file": ("Type de fichier non pris en charge.", "Unsupported file type."),
    "unreadable_file": ("Fichier illisible.", "Unreadable file."),
    "xdm_unreferenced_file": ("Fichier d'un envoi non décrit par ses métadonnées.",
                              "A file of a package its metadata does not describe."),
    "xdm_document_missing": ("Document annoncé par les métadonnées mais absent.",
                             "A document announced by the metadata but missing."),
    "xdm_metadata_unrecognised": ("Métadonnées d'envoi illisibles.", "Unreadable package metadata."),
    "settings_invalid": ("Paramètres de l'ancien dossier invalides : rien n'a été appliqué.",
                         "Invalid legacy settings: nothing was applied."),
    "settings_not_applicable": ("Paramètres de l'ancien dossier inapplicables : rien n'a été appliqué.",
                                "Legacy settings could not be applied: nothing was applied."),
    "store_refused": ("Document refusé par le dossier.", "Document refused by the record."),
    "internal_error": ("Erreur inattendue : ce document sera repris.", "Unexpected error: this item will be retried."),
    "duplicate_unique_id": ("Doublon : déjà présent dans votre dossier.", "Duplicate: already in your record."),
    "duplicate_content": ("Doublon : même contenu qu'un document déjà présent.",
                          "Duplicate: same content as a document already there."),
}

register_messages({f"migration_reason_{code}": {"fr": fr, "en": en} for code, (fr, en) in REASONS.items()})
register_messages({
    "migration_reason_unknown": {"fr": "Document mis de côté.", "en": "Item set aside."},
    "migration_conflict_not_found": {"fr": "Cet élément n'attend pas de confirmation.",
                                     "en": "This entry is not waiting for confirmation."},
})


def reason_code(code: str | None) -> str | None:
    if code is None:
        return None
    return f"migration_reason_{code}" if code in REASONS else "migration_reason_unknown"
