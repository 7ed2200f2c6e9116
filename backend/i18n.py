"""Patient-facing messages: French first, English available (chosen by Accept-Language)."""
from __future__ import annotations

from flask import has_request_context, request

LANGUAGES = ("fr", "en")

MESSAGES: dict[str, dict[str, str]] = {
    # generic HTTP
    "not_found": {"fr": "La ressource demandée n'existe pas.", "en": "The requested resource does not exist."},
    "method_not_allowed": {"fr": "Cette action n'est pas permise sur cette ressource.",
                           "en": "This method is not allowed on this resource."},
    "payload_too_large": {"fr": "Le contenu envoyé est trop volumineux.", "en": "The content sent is too large."},
    "unsupported_media_type": {"fr": "Le format envoyé n'est pas accepté (JSON attendu).",
                               "en": "The content type is not accepted (JSON expected)."},
    "invalid_request": {"fr": "Certaines informations sont manquantes ou invalides.",
                        "en": "Some information is missing or invalid."},
    "invalid_json": {"fr": "Le contenu envoyé n'est pas un JSON valide.", "en": "The body is not valid JSON."},
    "invalid_characters": {"fr": "Le champ « {field} » contient un caractère non autorisé ({what}). "
                                 "Retirez-le et réessayez.",
                           "en": "The field “{field}” holds a character that is not allowed ({what_en}). "
                                 "Remove it and try again."},
    "too_many_requests": {"fr": "Trop de tentatives. Réessayez dans {retry_after} secondes.",
                          "en": "Too many attempts. Try again in {retry_after} seconds."},
    "too_many_requests_minutes": {"fr": "Trop de tentatives. Réessayez dans {minutes} minutes.",
                                  "en": "Too many attempts. Try again in {minutes} minutes."},
    "internal_error": {"fr": "Une erreur inattendue est survenue. Réessayez plus tard.",
                       "en": "An unexpected error occurred. Please try again later."},
    "bad_request": {"fr": "La requête est invalide.", "en": "The request is invalid."},
    "unauthorized": {"fr": "Vous devez vous connecter pour accéder à cette page.",
                     "en": "You must log in to access this page."},
    "forbidden": {"fr": "Vous n'avez pas accès à cette ressource.", "en": "You do not have access to this resource."},
    "service_unavailable": {"fr": "Le service est momentanément indisponible.",
                            "en": "The service is temporarily unavailable."},
    # identity
    "invalid_nir": {"fr": "Le numéro de sécurité sociale est invalide : {reason}.",
                    "en": "The social security number is invalid: {reason}."},
    "invalid_birth_date": {"fr": "La date de naissance est invalide : {reason}.",
                           "en": "The birth date is invalid: {reason}."},
    # activation
    "invalid_activation": {
        "fr": "Les informations saisies ne correspondent pas à un profil à activer. "
              "Vérifiez votre numéro de sécurité sociale, votre date de naissance et le code reçu.",
        "en": "The details entered do not match a profile awaiting activation. "
              "Check your social security number, birth date and the code you received."},
    "activation_code_expired": {
        "fr": "Ce code d'activation a expiré. Demandez un nouveau code.",
        "en": "This activation code has expired. Ask for a new code."},
    "activation_locked": {
        "fr": "Trop d'essais avec ce code d'activation. Demandez un nouveau code.",
        "en": "Too many attempts with this activation code. Ask for a new code."},
    "account_opposed": {
        "fr": "Vous vous êtes opposé(e) à la création de ce profil.",
        "en": "You objected to the creation of this profile."},
    "already_activated": {"fr": "Ce profil est déjà activé. Connectez-vous.",
                          "en": "This profile is already activated. Please log in."},
    "activation_minor": {
        "fr": "Ce profil est celui d'un enfant mineur : un de ses représentants légaux l'active depuis son propre "
              "espace Carnet (Famille et aidants › Ajouter le dossier d'un enfant), avec ce même code.",
        "en": "This profile is a minor's: one of their legal representatives activates it from their own Carnet "
              "space (Family and carers › Add a child's record), with this same code."},
    "weak_password": {"fr": "Le mot de passe ne respecte pas les règles de sécurité.",
                      "en": "The password does not meet the security rules."},
    "password_rule_length": {"fr": "Au moins {min_length} caractères", "en": "At least {min_length} characters"},
    "password_rule_lower": {"fr": "Au moins une lettre minuscule", "en": "At least one lowercase letter"},
    "password_rule_upper": {"fr": "Au moins une lettre majuscule", "en": "At least one uppercase letter"},
    "password_rule_digit": {"fr": "Au moins un chiffre", "en": "At least one digit"},
    "password_rule_special": {"fr": "Au moins un caractère spécial", "en": "At least one special character"},
    "password_rule_common": {"fr": "Pas un mot de passe trop courant ou facile à deviner",
                             "en": "Not a common or easily guessed password"},
    # second factor / login
    "mfa_already_enrolled": {"fr": "Un second facteur est déjà enregistré.",
                             "en": "A second factor is already enrolled."},
    "mfa_not_started": {"fr": "Commencez par choisir une méthode de second facteur.",
                        "en": "Start by choosing a second-factor method."},
    "mfa_method_unavailable": {"fr": "Cette méthode n'est pas disponible : aucune adresse e-mail n'est enregistrée.",
                               "en": "This method is unavailable: no email address is on file."},
    "invalid_otp": {"fr": "Le code à usage unique est incorrect, expiré ou déjà utilisé.",
                    "en": "The one-time code is wrong, expired or already used."},
    "invalid_credentials": {"fr": "Identifiant ou mot de passe incorrect.", "en": "Wrong identifier or password."},
    "invalid_token": {"fr": "Votre session a expiré. Connectez-vous à nouveau.",
                      "en": "Your session has expired. Please log in again."},
    "session_expired": {"fr": "Votre session a pris fin : par sécurité, elle dure {hours} heures au plus. "
                              "Connectez-vous à nouveau.",
                        "en": "Your session has ended: for your security it lasts {hours} hours at most. "
                              "Please sign in again."},
    "session_idle": {"fr": "Votre session a pris fin après {minutes} minutes sans activité, pour protéger vos "
                           "données de santé. Connectez-vous à nouveau.",
                     "en": "Your session ended after {minutes} minutes without activity, to protect your health "
                           "data. Please sign in again."},
    "session_revoked": {"fr": "Cet appareil a été déconnecté (depuis vos appareils, un changement de mot de passe "
                              "ou la fermeture du profil). Connectez-vous à nouveau.",
                        "en": "This device was signed out (from your devices, a password change or the closing of "
                              "the profile). Please sign in again."},
    "account_closed": {"fr": "Ce profil est fermé. Vous pouvez le réactiver.",
                       "en": "This profile is closed. You can reactivate it."},
    "account_not_closed": {"fr": "Ce profil n'est pas fermé.", "en": "This profile is not closed."},
    "account_not_active": {"fr": "Ce profil n'est pas activé.", "en": "This profile is not activated."},
    "retention_expired": {"fr": "La durée de conservation de ce profil est dépassée : il ne peut plus être réactivé.",
                          "en": "This profile's retention period is over: it can no longer be reactivated."},
    "wrong_password": {"fr": "Le mot de passe saisi est incorrect.", "en": "The password entered is wrong."},
    "same_password": {"fr": "Le nouveau mot de passe doit être différent de l'ancien.",
                      "en": "The new password must differ from the old one."},
    "device_not_found": {"fr": "Cet appareil n'existe pas ou a déjà été déconnecté.",
                         "en": "This device does not exist or was already signed out."},
    # professionals
    "invalid_rpps": {"fr": "Le numéro RPPS est invalide : {reason}.", "en": "The RPPS number is invalid: {reason}."},
    "invalid_structure_id": {"fr": "L'identifiant de structure est invalide (identifiant national de structure : "
                                   "lettres et chiffres, 2 à 32).",
                             "en": "The structure identifier is invalid (national structure identifier: letters and "
                                   "digits, 2 to 32)."},
    "unknown_profession": {"fr": "Code de profession inconnu : {profession}.", "en": "Unknown profession code: {profession}."},
    "rpps_exists": {"fr": "Un professionnel avec ce RPPS existe déjà.",
                    "en": "A professional with this RPPS already exists."},
    "patient_exists": {"fr": "Un profil existe déjà pour ce numéro de sécurité sociale.",
                       "en": "A profile already exists for this social security number."},
    # home
    "activity_login": {"fr": "Connexion à votre profil", "en": "Signed in to your profile"},
    "activity_logout": {"fr": "Déconnexion", "en": "Signed out"},
    "activity_activated": {"fr": "Activation de votre profil", "en": "Profile activated"},
    "activity_password_set": {"fr": "Mot de passe défini", "en": "Password set"},
    "activity_password_changed": {"fr": "Mot de passe modifié", "en": "Password changed"},
    "activity_mfa_enrolled": {"fr": "Second facteur enregistré", "en": "Second factor enrolled"},
    "activity_device_revoked": {"fr": "Appareil déconnecté", "en": "Device signed out"},
    "activity_reactivated": {"fr": "Réactivation de votre profil", "en": "Profile reactivated"},
    "activity_created": {"fr": "Création de votre profil", "en": "Profile created"},
    "activity_other": {"fr": "Activité sur votre profil", "en": "Activity on your profile"},
    "next_step_email": {"fr": "Ajoutez une adresse e-mail pour recevoir vos notifications",
                        "en": "Add an email address to receive your notifications"},
    "next_step_profile": {"fr": "Complétez votre profil médical (allergies, traitements, vaccinations)",
                          "en": "Complete your medical profile (allergies, treatments, vaccinations)"},
    "next_step_directives": {"fr": "Rédigez vos directives anticipées si vous le souhaitez",
                             "en": "Write your advance directives if you wish"},
    "next_step_access": {"fr": "Vérifiez qui peut consulter votre dossier",
                         "en": "Check who can see your record"},
}


def register_messages(messages: dict[str, dict[str, str]]) -> None:
    """Each feature registers its own patient-facing messages (French and English) at import time."""
    for code, texts in messages.items():
        if code in MESSAGES and MESSAGES[code] != texts:
            raise ValueError(f"message code {code!r} registered twice with different texts")
        if "fr" not in texts or "en" not in texts:
            raise ValueError(f"message {code!r} needs French and English")
        MESSAGES[code] = texts


def language() -> str:
    """The language of the request's answer (``Accept-Language``; French by default), read once per request:
    a page of twenty items asks for it once per label."""
    if not has_request_context():
        return "fr"
    environ = request.environ
    chosen = environ.get(_LANGUAGE_KEY)
    if chosen is None:
        chosen = environ[_LANGUAGE_KEY] = request.accept_languages.best_match(LANGUAGES) or "fr"
    return chosen


_LANGUAGE_KEY = "carnet.language"


def message(code: str, lang: str | None = None, **params: object) -> str:
    entry = MESSAGES.get(code)
    if entry is None:
        return code
    text = entry.get(lang or language()) or entry["fr"]
    try:
        return text.format(**params)
    except (KeyError, IndexError):
        return text
