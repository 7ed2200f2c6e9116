"""Patient-facing messages of the documents (categories, refusals of uploads and document actions)."""
from backend.i18n import register_messages

CATEGORY_LABELS = {
    "SYNTHESE": ("Synthèses", "Summaries"),
    "ORD_SOIN": ("Ordonnances et soins", "Prescriptions and care"),
    "RADIO_SC": ("Imagerie", "Imaging"),
    "BIOLOGIE": ("Biologie", "Laboratory results"),
    "CPT_REND": ("Comptes rendus", "Reports"),
    "DEPISTAG": ("Prévention et dépistage", "Prevention and screening"),
    "CERT_MED": ("Certificats", "Certificates"),
    "AUTR_DOC": ("Autres documents", "Other documents"),
    "DOC_ADM": ("Documents administratifs", "Administrative documents"),
    "SYNTH_PML": ("Synthèse médicale", "Medical summary"),
    "DIR_ANT": ("Directives anticipées", "Advance directives"),
    "CAR_VAC": ("Vaccinations", "Vaccinations"),
    "VDP": ("Volontés et droits du patient", "Patient's wishes and rights"),
    "REMB": ("Remboursements", "Reimbursements"),
    "QUEST_SANTE": ("Questionnaires de santé", "Health questionnaires"),
}

register_messages({f"document_category_{code}": {"fr": fr, "en": en} for code, (fr, en) in CATEGORY_LABELS.items()})

register_messages({
    "document_not_found": {"fr": "Ce document n'existe pas ou n'est pas accessible.",
                           "en": "This document does not exist or is not accessible."},
    "document_invalid": {"fr": "Les informations du document sont invalides.",
                         "en": "The document's metadata is invalid."},
    "document_unique_id_conflict": {
        "fr": "Un autre document portant le même identifiant existe déjà dans ce dossier.",
        "en": "Another document with the same identifier already exists in this record."},
    "document_not_own_upload": {
        "fr": "Vous ne pouvez supprimer que les documents que vous avez ajoutés. "
              "Pour un document d'un professionnel, demandez sa suppression.",
        "en": "You can only delete documents you added. For a professional's document, ask for its removal."},
    "document_removal_own_upload": {
        "fr": "Vous avez ajouté ce document vous-même : vous pouvez le supprimer directement.",
        "en": "You added this document yourself: you can delete it directly."},
    "document_release_not_author": {"fr": "Seul l'auteur du document peut le rendre visible au patient.",
                                    "en": "Only the document's author can make it visible to the patient."},
    "document_not_invisible": {"fr": "Ce document est déjà visible par le patient.",
                               "en": "This document is already visible to the patient."},
    "document_not_viewable": {"fr": "Ce document ne peut pas être affiché dans l'application ; vous pouvez le télécharger.",
                              "en": "This document cannot be shown in the app; you can download it."},
    "document_page_not_found": {"fr": "Cette page n'existe pas (le document compte {page_count} page(s)).",
                                "en": "This page does not exist (the document has {page_count} page(s))."},
    "upload_type_not_allowed": {"fr": "Ce type de fichier n'est pas accepté. Formats acceptés : {allowed}.",
                                "en": "This file type is not accepted. Accepted formats: {allowed}."},
    "upload_type_mismatch": {
        "fr": "Le contenu du fichier ne correspond pas à son extension .{ext} : vérifiez qu'il s'agit bien "
              "d'un fichier {ext}.",
        "en": "The file's content does not match its .{ext} extension: check that it really is a {ext} file."},
    "upload_unreadable": {"fr": "Ce fichier {ext} est illisible (endommagé ou protégé par un mot de passe).",
                          "en": "This {ext} file cannot be read (damaged or password-protected)."},
    "upload_too_large": {"fr": "Le fichier dépasse la taille maximale autorisée ({max_mb} Mo).",
                         "en": "The file exceeds the maximum size allowed ({max_mb} MB)."},
    "upload_empty": {"fr": "Le fichier est vide.", "en": "The file is empty."},
    "upload_duplicate": {"fr": "Vous avez déjà ajouté ce document.", "en": "You already added this document."},
    "upload_comment_too_long": {"fr": "Le commentaire ne doit pas dépasser {max} caractères.",
                                "en": "The comment must not exceed {max} characters."},
    "upload_category": {"fr": "Cette catégorie n'est pas proposée pour un document que vous ajoutez.",
                        "en": "This category is not offered for a document you add."},
    "invalid_date_range": {"fr": "la date de début doit précéder la date de fin",
                           "en": "the start date must come before the end date"},
    "removal_reason": {"fr": "motif inconnu", "en": "unknown reason"},
    "home_new_documents": {"fr": "{count} nouveau(x) document(s) dans votre dossier",
                           "en": "{count} new document(s) in your record"},
})
