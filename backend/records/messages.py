"""Patient-facing messages of the record."""
from backend.i18n import register_messages

register_messages({
    "access_blocked": {"fr": "Le titulaire du dossier a bloqué votre accès.",
                       "en": "The record holder has blocked your access."},
    "access_no_consent": {"fr": "Vous n'êtes pas autorisé(e) à consulter ce dossier.",
                          "en": "You are not authorised to read this record."},
    "access_no_record": {"fr": "Aucun dossier n'existe pour ce patient.", "en": "No record exists for this patient."},
    "access_account_closed": {"fr": "Ce dossier est fermé.", "en": "This record is closed."},
    "access_emergency_disabled": {"fr": "Le patient a désactivé cet accès en urgence.",
                                  "en": "The patient has disabled this emergency access."},
    "access_reason_required": {"fr": "Un accès en urgence exige un motif (X-Purpose-Reason).",
                               "en": "An emergency access requires a reason (X-Purpose-Reason)."},
    "access_not_regulator": {"fr": "Seul un médecin régulateur du SAMU peut déclarer ETREAT.",
                             "en": "Only a SAMU regulator may declare ETREAT."},
    "access_other_patient": {"fr": "Ce dossier n'est pas le vôtre.", "en": "This record is not yours."},
    "access_owner": {"fr": "Accès autorisé.", "en": "Access granted."},
    # refusals of writes (policy.WRITE_RULES)
    "access_not_permitted": {"fr": "Cette action sur ce dossier ne vous est pas permise.",
                             "en": "You are not allowed to do this on this record."},
    "access_not_readable": {
        "fr": "Remplacement refusé : le document à remplacer n'existe pas dans ce dossier ou vous ne pouvez pas "
              "le consulter. Seul un document que vous pouvez consulter peut être remplacé.",
        "en": "Replacement refused: the document to replace does not exist in this record or you may not read "
              "it. Only a document you may read can be replaced."},
    "access_not_author": {
        "fr": "Remplacement refusé : seul l'auteur du document ou un professionnel de sa structure peut le "
              "remplacer.",
        "en": "Replacement refused: only the document's author or a professional of their structure may replace "
              "it."},
    "access_not_own_appointment": {"fr": "Ce rendez-vous n'est pas le vôtre.",
                                   "en": "This appointment is not yours."},
    "access_insurer_feeds_only": {"fr": "L'Assurance Maladie alimente le dossier mais ne le consulte pas.",
                                  "en": "The health insurer feeds the record but does not read it."},
})
