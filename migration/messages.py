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
    "zip_entry_corrupt": ("Fichier abîmé dans l'archive (son contenu ne correspond pas à sa taille ou à son "
                          "contrôle d'intégrité) : il a été mis de côté, le reste a été importé.",
                          "A damaged file in the archive (its content does not match its size or its integrity "
                          "check): it was set aside, the rest was imported."),
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


# What the import noticed about an item it took in anyway (``warnings`` of the report), in the patient's words.
# One table: a code missing here reads as the generic sentence, never as the code.
WARNINGS = {
    "cda_in_xslt": ("Le document était enveloppé dans une feuille de style : son contenu a été repris tel quel.",
                    "The document was wrapped in a style sheet: its content was taken as it is."),
    "type_code_differs": ("Le type du document diffère entre le document et sa fiche d'envoi : celui du document "
                          "a été retenu.", "The document's type differs from its submission sheet's: the "
                          "document's own was kept."),
    "type_code_system_unknown": ("Le type du document suit une nomenclature inconnue : il est classé d'après "
                                 "son contenu.", "The document's type uses an unknown code list: it is filed by "
                                 "its content."),
    "class_code_scheme_wrong": ("La catégorie indiquée à l'envoi n'était pas reconnue : le document est classé "
                                "d'après son type.", "The category given at submission was not recognised: the "
                                "document is filed by its type."),
    "class_code_unknown": ("La catégorie indiquée à l'envoi est inconnue : le document est classé d'après son type.",
                           "The category given at submission is unknown: the document is filed by its type."),
    "unique_id_differs": ("L'identifiant du document diffère de celui de sa fiche d'envoi.",
                          "The document's identifier differs from its submission sheet's."),
    "no_unique_id": ("Le document n'avait pas d'identifiant : Carnet lui en a donné un.",
                     "The document had no identifier: Carnet gave it one."),
    "external_reference_missing": ("Un élément auquel le document renvoie (une image, une pièce jointe) n'a pas "
                                   "été trouvé.", "Something the document refers to (an image, an attachment) was "
                                   "not found."),
    "same_id_different_bytes": ("Un autre exemplaire de ce document, légèrement différent, existait déjà : les "
                                "deux sont gardés.", "Another, slightly different copy of this document was "
                                "already there: both are kept."),
    "uri_case": ("Le fichier était désigné avec une autre casse dans sa fiche d'envoi.",
                 "The file was named with a different case in its submission sheet."),
    "uri_not_found": ("La fiche d'envoi désignait un fichier absent : le document a été retrouvé autrement.",
                      "The submission sheet named a missing file: the document was found otherwise."),
    "no_uri": ("La fiche d'envoi ne désignait pas de fichier : le document a été retrouvé autrement.",
               "The submission sheet named no file: the document was found otherwise."),
    "matched_without_uri": ("Le document a été rapproché de sa fiche d'envoi sans nom de fichier.",
                            "The document was matched to its submission sheet without a file name."),
    "hash_mismatch": ("Le contenu du fichier ne correspond pas à l'empreinte de sa fiche d'envoi.",
                      "The file's content does not match its submission sheet's fingerprint."),
    "size_mismatch": ("La taille du fichier ne correspond pas à celle de sa fiche d'envoi.",
                      "The file's size does not match its submission sheet's."),
    "not_cda": ("Le fichier n'est pas un document CDA : il a été repris d'après sa fiche d'envoi.",
                "The file is not a CDA document: it was taken from its submission sheet."),
}
register_messages({f"migration_warning_{code}": {"fr": fr, "en": en} for code, (fr, en) in WARNINGS.items()})
register_messages({"migration_warning_unknown": {
    "fr": "Une information de ce document n'a pas pu être reprise telle quelle.",
    "en": "Some information in this document could not be taken as it was."}})


def warning_code(code: str) -> str:
    return f"migration_warning_{code}" if code in WARNINGS else "migration_warning_unknown"


def reason_code(code: str | None) -> str | None:
    if code is None:
        return None
    return f"migration_reason_{code}" if code in REASONS else "migration_reason_unknown"
