"""Texts of the professional FHIR API (OperationOutcome diagnostics) and of the patient's export."""
from backend.i18n import register_messages

register_messages({
    "fhir_unauthorized": {"fr": "Authentification requise : jeton porteur (Bearer) d'un professionnel de santé.",
                          "en": "Authentication required: a health professional's bearer token."},
    "fhir_invalid_json": {"fr": "Le contenu envoyé n'est pas un JSON valide.", "en": "The body is not valid JSON."},
    "fhir_unsupported_media_type": {
        "fr": "Format non accepté : application/fhir+json attendu.",
        "en": "Unsupported content type: application/fhir+json expected."},
    "fhir_too_large": {"fr": "Le lot envoyé dépasse la taille maximale acceptée ({limit} octets).",
                       "en": "The bundle exceeds the maximum accepted size ({limit} bytes)."},
    "fhir_invalid_resource": {"fr": "Ressource FHIR R4 invalide : {reason}.",
                              "en": "Invalid FHIR R4 resource: {reason}."},
    "fhir_not_a_transaction": {"fr": "Un Bundle de type « transaction » est attendu (reçu : {received}).",
                               "en": "A Bundle of type 'transaction' is expected (received: {received})."},
    "fhir_mhd_rule": {"fr": "Lot refusé (IHE MHD ITI-65) : {reason}.",
                      "en": "Bundle refused (IHE MHD ITI-65): {reason}."},
    "fhir_hash_mismatch": {
        "fr": "L'empreinte (attachment.hash) du document {entry} ne correspond pas au contenu reçu.",
        "en": "The hash (attachment.hash) of document {entry} does not match the content received."},
    "fhir_size_mismatch": {
        "fr": "La taille déclarée (attachment.size) du document {entry} ne correspond pas au contenu reçu.",
        "en": "The declared size (attachment.size) of document {entry} does not match the content received."},
    "fhir_document_too_large": {"fr": "Le document {entry} dépasse la taille maximale ({limit} octets).",
                                "en": "Document {entry} exceeds the maximum size ({limit} bytes)."},
    "fhir_xml_entities": {
        "fr": "Le document {entry} est refusé : son XML déclare des entités (DTD interne : risque XXE ou "
              "d'expansion d'entités). Envoyez-le sans DOCTYPE ni déclaration <!ENTITY>.",
        "en": "Document {entry} is refused: its XML declares entities (internal DTD: an XXE or entity expansion "
              "risk). Send it without a DOCTYPE or <!ENTITY> declarations."},
    "fhir_xml_external_dtd": {
        "fr": "Le document {entry} est refusé : son XML fait référence à une DTD externe (SYSTEM ou PUBLIC), "
              "qui ne sera jamais chargée. Envoyez-le sans DOCTYPE.",
        "en": "Document {entry} is refused: its XML references an external DTD (SYSTEM or PUBLIC), which is "
              "never loaded. Send it without a DOCTYPE."},
    "fhir_unknown_patient": {
        "fr": "Aucun dossier n'existe pour ce patient (identifiant INS inconnu, dossier refusé ou fermé).",
        "en": "No record exists for this patient (unknown INS identifier, refused or closed record)."},
    "fhir_author_not_depositor": {
        "fr": "Le document {entry} est refusé : son auteur doit être le professionnel qui le dépose (le RPPS "
              "authentifié). Un document d'un autre professionnel est déposé par lui.",
        "en": "Document {entry} is refused: its author must be the professional who deposits it (the "
              "authenticated RPPS). Another professional's document is deposited by them."},
    "fhir_author_structure_not_depositor": {
        "fr": "Le document {entry} est refusé : la structure de son auteur doit être celle du professionnel "
              "authentifié.",
        "en": "Document {entry} is refused: its author's structure must be the authenticated professional's."},
    "fhir_invalid_search": {"fr": "Paramètre de recherche invalide : {reason}.",
                            "en": "Invalid search parameter: {reason}."},
    "fhir_invalid_purpose": {
        "fr": "X-Purpose-Of-Use doit valoir ETREAT ou BTG (reçu : {received}).",
        "en": "X-Purpose-Of-Use must be ETREAT or BTG (received: {received})."},
    "fhir_not_acceptable": {
        "fr": "Format de réponse non disponible : seul application/fhir+json (JSON) est servi.",
        "en": "Response format not available: only application/fhir+json (JSON) is served."},
    "fhir_bundle_replayed": {
        "fr": "Ce lot a déjà été reçu : rien n'a été modifié, les ressources existantes sont indiquées.",
        "en": "This bundle was already received: nothing changed; the existing resources are given."},
    "fhir_submission_conflict": {
        "fr": "Ce SubmissionSet (même uniqueId) a déjà été reçu avec d'autres documents.",
        "en": "This SubmissionSet (same uniqueId) was already received with other documents."},
    "history_action_patient_read": {"fr": "Consultation de votre identité (INS)",
                                    "en": "Your identity (INS) read"},
    "fhir_not_found": {"fr": "La ressource demandée n'existe pas ou ne vous est pas accessible.",
                       "en": "The requested resource does not exist or is not available to you."},
})
