"""Translations for what the patient reads in the app: French first, English available.

gettext-style: the message id *is* the French sentence, so code and ``.kv`` files read
naturally and a missing English entry falls back to French instead of showing a key.
The app shell's English is below; features add theirs in ``locale/en/<feature>.json``.
The language is chosen once at start-up (``CARNET_LANG``), before any screen is built,
like ``gettext.install``. Messages that come from the server are already translated by it
(``Accept-Language``) and do not go through here.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"

# msgid (French) → English. Keep in the order the patient meets them.
ENGLISH: dict[str, str] = {
    # app & welcome
    "Carnet": "Carnet",
    "Votre espace santé, en toute sécurité": "Your health space, safely",
    "Vos documents de santé, vos échanges avec vos soignants et vos rendez-vous, au même endroit.": (
        "Your health documents, your messages with your care team and your appointments,"
        " in one place."
    ),
    "Activer mon profil": "Activate my profile",
    "Première visite ? Munissez-vous du courrier contenant votre code d'activation.": (
        "First visit? Have the letter with your activation code at hand."
    ),
    "Se connecter": "Sign in",
    "Retour": "Back",
    "Veuillez patienter…": "Please wait…",
    # activation — identity
    "Étape {step} sur {total}": "Step {step} of {total}",
    "Vérifions votre identité": "Let's check your identity",
    "Saisissez les informations figurant sur le courrier d'activation que vous avez reçu.": (
        "Enter the details printed on the activation letter you received."
    ),
    "Numéro de sécurité sociale": "Social security number",
    "15 caractères, sur votre carte Vitale": "15 characters, on your carte Vitale",
    "Date de naissance": "Date of birth",
    "JJ/MM/AAAA": "DD/MM/YYYY",
    "Code d'activation": "Activation code",
    "12 caractères, sur votre courrier": "12 characters, on your letter",
    "Continuer": "Continue",
    # activation — password
    "Bonjour {name}": "Hello {name}",
    "Choisissez votre mot de passe": "Choose your password",
    "Il protège l'accès à vos données de santé. Il doit contenir :": (
        "It protects access to your health data. It must contain:"
    ),
    "Mot de passe": "Password",
    "Confirmation du mot de passe": "Confirm your password",
    "Les deux saisies sont identiques": "Both entries match",
    "Afficher": "Show",
    "Masquer": "Hide",
    "Créer mon mot de passe": "Create my password",
    "Règle respectée": "Rule met",
    "Règle non respectée": "Rule not met",
    # activation — second factor
    "Sécurisez votre compte": "Secure your account",
    "À chaque connexion, Carnet vous demandera un code à usage unique. Ajoutez Carnet à "
    "votre application d'authentification (FreeOTP, Aegis, Google Authenticator…) "
    "avec cette clé :": (
        "Each time you sign in, Carnet will ask for a one-time code. Add Carnet to your "
        "authenticator app (FreeOTP, Aegis, Google Authenticator…) with this key:"
    ),
    "Clé à saisir dans l'application": "Key to enter in the app",
    "Lien de configuration": "Setup link",
    "Saisissez ensuite le code à 6 chiffres affiché par l'application.": (
        "Then enter the 6-digit code the app shows."
    ),
    "Code à 6 chiffres": "6-digit code",
    "Valider": "Confirm",
    "Réessayer": "Try again",
    # login
    "Connexion": "Sign in",
    "Identifiez-vous avec votre numéro de sécurité sociale et votre mot de passe.": (
        "Sign in with your social security number and your password."
    ),
    "Code de sécurité": "Security code",
    "Saisissez le code à 6 chiffres affiché par votre application d'authentification.": (
        "Enter the 6-digit code shown by your authenticator app."
    ),
    # home
    "Dernière connexion : {when}": "Last sign-in: {when}",
    "Première connexion : bienvenue dans Carnet !": "First sign-in: welcome to Carnet!",
    "Prochaines étapes": "Next steps",
    "Activité récente du compte": "Recent account activity",
    "Aucune activité récente.": "No recent activity.",
    "Rien à faire pour l'instant.": "Nothing to do for now.",
    "Se déconnecter": "Sign out",
    "Vous êtes déconnecté(e).": "You are signed out.",
    "Votre session a expiré. Reconnectez-vous.": "Your session has expired. Please sign in again.",
    # form problems found before calling the server (mobile.api.fields)
    "Le numéro de sécurité sociale comporte 15 caractères.": (
        "The social security number has 15 characters."
    ),
    "Ce numéro de sécurité sociale n'est pas valide.": "This social security number is not valid.",
    "Saisissez la date au format JJ/MM/AAAA.": "Enter the date as DD/MM/YYYY.",
    "Cette date de naissance n'existe pas.": "This date of birth does not exist.",
    "Cette date de naissance n'est pas plausible.": "This date of birth is not plausible.",
    "Le code d'activation comporte 12 caractères.": "The activation code has 12 characters.",
    "Le code de sécurité comporte 6 chiffres.": "The security code has 6 digits.",
    "Saisissez votre mot de passe.": "Enter your password.",
    # dates
    "le {date} à {time}": "on {date} at {time}",
}

LOCALE_DIR = Path(__file__).with_name("locale")


def _feature_catalogues(language: str) -> dict[str, str]:
    """``locale/<language>/*.json``: one file per feature ({French: translation}), so each
    screen's author adds translations without editing (and conflicting in) this module."""
    merged: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / language).glob("*.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


ENGLISH.update(_feature_catalogues("en"))
CATALOGUES: dict[str, dict[str, str]] = {"fr": {}, "en": ENGLISH}

_language = DEFAULT_LANGUAGE


def set_language(language: str) -> None:
    """Choose the language for the rest of the process; call before building screens."""
    global _language
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; choose one of {LANGUAGES}")
    _language = language


def get_language() -> str:
    return _language


def _(message: str) -> str:
    """Translate a French message id into the current language (French if not found)."""
    return CATALOGUES[_language].get(message, message)


# -- the patient's grammatical gender -----------------------------------------------------------------
# French agrees with the person a sentence speaks of: "vous êtes déconnectée" for Camille. The patient's sex
# is known (/home says it), so a sentence about the patient is agreed instead of "(e)"; a sentence about
# someone whose sex is not known (a professional) keeps its neutral form.
_sex = ""


def set_sex(sex: str | None) -> None:
    global _sex
    _sex = (sex or "").upper()[:1]


def agree(text: str) -> str:
    """A translated sentence about the patient, agreed with their sex ('prévenu(e)' → 'prévenue' for F)."""
    if _sex == "F":
        return text.replace("(e)", "e")
    if _sex == "M":
        return text.replace("(e)", "")
    return text


# -- time: one rule ----------------------------------------------------------------------------------
# Every time the patient enters, reads or exports is in the patient's zone (the server's /me and /home say
# which: CARNET_AGENDA_TIMEZONE, Europe/Paris by default), never the phone's: a phone set to another zone
# (travel, a wrong setting) would otherwise list at 18:02 a measure entered at 19:02, and disagree with the
# PDF of the access history, which the server writes in that zone.
DEFAULT_ZONE = "Europe/Paris"
_zone = ZoneInfo(DEFAULT_ZONE)


def set_zone(name: str | None) -> None:
    """The patient's zone (an IANA name); an unknown one keeps the current zone."""
    global _zone
    if not name:
        return
    try:
        _zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass


def zone() -> ZoneInfo:
    return _zone


def zone_differs() -> bool:
    """The phone's own zone is not the patient's right now: worth saying which zone times are in."""
    now = datetime.now(timezone.utc)
    return now.astimezone().utcoffset() != now.astimezone(_zone).utcoffset()


def zone_note() -> str:
    """'heure de Paris', for the places where a time is entered or read out of context."""
    city = str(_zone.key).rsplit("/", 1)[-1].replace("_", " ")
    return _("heure de {city}").format(city=city)


def local(moment: datetime) -> datetime:
    """An instant in the patient's zone (a naive one is taken as already there)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=_zone)
    return moment.astimezone(_zone)


def now_local() -> datetime:
    return datetime.now(_zone)


def today_local() -> date:
    return now_local().date()


def format_datetime(iso_timestamp: str | None) -> str:
    """'2026-11-22T15:18:00+00:00' → 'le 22/11/2026 à 16:18' (the patient's zone), '' if unreadable."""
    if not iso_timestamp:
        return ""
    try:
        moment = datetime.fromisoformat(iso_timestamp.replace("Z", "+00:00"))
    except ValueError:
        return iso_timestamp
    if moment.tzinfo is not None:
        moment = local(moment)
    if _language == "en":
        day, clock = moment.strftime("%d %b %Y"), moment.strftime("%H:%M")
    else:
        day, clock = moment.strftime("%d/%m/%Y"), moment.strftime("%H:%M")
    return _("le {date} à {time}").format(date=day, time=clock)
