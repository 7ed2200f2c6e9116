"""Texts of the insurer's feed (errors its software reads, in French first)."""
from backend.i18n import register_messages

register_messages({
    "insurer_invalid_code": {"fr": "Le code de l'organisme doit comporter de 1 à 32 lettres, chiffres, - ou _.",
                             "en": "The insurer code must be 1 to 32 letters, digits, - or _."},
    "insurer_exists": {"fr": "Un organisme d'assurance maladie « {code} » existe déjà.",
                       "en": "An insurer \u201c{code}\u201d already exists."},
    "insurer_unknown": {"fr": "Aucun organisme d'assurance maladie « {code} ».", "en": "No insurer \u201c{code}\u201d."},
    "insurer_deposit_type": {"fr": "{entry} : l'Assurance Maladie ne dépose que des données de remboursement "
                                   "(typeCode REMB, classCode 60).",
                             "en": "{entry}: the health insurer deposits reimbursement data only "
                                   "(typeCode REMB, classCode 60)."},
    "insurer_deposit_flags": {"fr": "{entry} : des données de remboursement ne peuvent pas être cachées au patient.",
                              "en": "{entry}: reimbursement data cannot be hidden from the patient."},
    "insurer_replace_not_own": {"fr": "L'Assurance Maladie ne remplace que les historiques qu'elle a déposés.",
                                "en": "The health insurer replaces only the histories it deposited."},
    "fhir_insurer_no_read": {"fr": "L'Assurance Maladie alimente les dossiers mais ne les consulte pas.",
                             "en": "The health insurer feeds records but does not read them."},
})
