"""What a problem response says in the patient's language beyond its ``detail``: the ``title`` of each HTTP
status, and the field messages of a 422 (marshmallow's own are English: "Missing data for required field.",
"Unknown field." …), translated here in one table. A message not in the table is kept as it is."""
from __future__ import annotations

import re

from backend.i18n import language

TITLES = {
    400: ("Requête incorrecte", "Bad Request"), 401: ("Non authentifié", "Unauthorized"),
    403: ("Accès refusé", "Forbidden"), 404: ("Introuvable", "Not Found"),
    405: ("Méthode non autorisée", "Method Not Allowed"), 406: ("Format non disponible", "Not Acceptable"),
    409: ("Conflit", "Conflict"), 410: ("N'existe plus", "Gone"), 413: ("Trop volumineux", "Content Too Large"),
    415: ("Type de contenu non pris en charge", "Unsupported Media Type"),
    422: ("Données invalides", "Unprocessable Content"), 423: ("Verrouillé", "Locked"),
    428: ("Condition préalable requise", "Precondition Required"),
    429: ("Trop de tentatives", "Too Many Requests"), 500: ("Erreur interne", "Internal Server Error"),
    503: ("Service indisponible", "Service Unavailable"),
}

# (marshmallow's English message as a pattern, the French sentence with the same groups)
FIELD_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(f"^{en}$"), fr) for en, fr in (
    (r"Missing data for required field\.", "Information obligatoire manquante."),
    (r"Unknown field\.", "Champ inconnu."),
    (r"Field may not be null\.", "Ce champ ne peut pas être vide."),
    (r"Not a valid string\.", "Texte attendu."),
    (r"Not a valid integer\.", "Nombre entier attendu."),
    (r"Not a valid number\.", "Nombre attendu."),
    (r"Not a valid boolean\.", "Valeur vrai/faux attendue."),
    (r"Not a valid datetime\.", "Date et heure invalides."),
    (r"Not a valid date\.", "Date invalide."),
    (r"Not a valid time\.", "Heure invalide."),
    (r"Not a valid email address\.", "Adresse e-mail invalide."),
    (r"Not a valid URL\.", "Adresse web invalide."),
    (r"Not a valid UUID\.", "Identifiant invalide."),
    (r"Not a valid list\.", "Liste attendue."),
    (r"Not a valid mapping type\.", "Objet attendu."),
    (r"Invalid input type\.", "Type de donnée invalide."),
    (r"Invalid value\.", "Valeur invalide."),
    (r"String does not match expected pattern\.", "Format invalide."),
    (r"Length must be between (\d+) and (\d+)\.", r"La longueur doit être comprise entre \1 et \2."),
    (r"Shorter than minimum length (\d+)\.", r"Au moins \1 caractère(s)."),
    (r"Longer than maximum length (\d+)\.", r"Au plus \1 caractère(s)."),
    (r"Length must be (\d+)\.", r"La longueur doit être \1."),
    (r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\.",
     r"La valeur doit être comprise entre \1 et \2."),
    (r"Must be greater than or equal to (\S+)\.", r"La valeur doit être au moins \1."),
    (r"Must be less than or equal to (\S+)\.", r"La valeur doit être au plus \1."),
    (r"Must be greater than (\S+)\.", r"La valeur doit être supérieure à \1."),
    (r"Must be less than (\S+)\.", r"La valeur doit être inférieure à \1."),
    (r"Must be one of: (.*)\.", r"Valeurs possibles : \1."),
    (r"Must be equal to (.*)\.", r"La valeur doit être \1."),
))


def title(status: int, default: str) -> str:
    texts = TITLES.get(status)
    if texts is None:
        return default
    return texts[1] if language() == "en" else texts[0]


def field_message(text: str) -> str:
    """A 422 field message in the request's language (marshmallow's English as the English)."""
    if language() == "en":
        return text
    parts = []
    for part in text.split("; "):
        for pattern, french in FIELD_MESSAGES:
            if pattern.match(part):
                part = pattern.sub(french, part)
                break
        parts.append(part)
    return "; ".join(parts)
