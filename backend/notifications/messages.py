"""What the patient reads about notifications, French first. Every text is generic: it says what kind of
thing happened, never what it contains (a notification may be read on a lock screen, and push services
are outside the health-data perimeter)."""
from __future__ import annotations

from backend.i18n import register_messages

register_messages({
    # kinds, as the settings screen lists them
    "notif_kind_message": {"fr": "Messages", "en": "Messages"},
    "notif_kind_document": {"fr": "Documents", "en": "Documents"},
    "notif_kind_appointment": {"fr": "Rendez-vous", "en": "Appointments"},
    "notif_kind_service": {"fr": "Services connectés", "en": "Connected services"},
    "notif_kind_screening": {"fr": "Prévention et dépistage", "en": "Prevention and screening"},
    "notif_kind_professional_access": {"fr": "Accès des professionnels à votre profil",
                                       "en": "Professionals' access to your profile"},
    "notif_kind_emergency_access": {"fr": "Accès en urgence", "en": "Emergency access"},
    "notif_kind_account": {"fr": "Sécurité de votre compte", "en": "Your account's security"},
    # titles and bodies of notifications (centre, push shown by the app, email)
    "notif_title_message": {"fr": "Nouveau message", "en": "New message"},
    "notif_body_message": {"fr": "Vous avez reçu un nouveau message dans votre messagerie de santé.",
                           "en": "You have a new message in your health inbox."},
    "notif_title_document": {"fr": "Nouveau document", "en": "New document"},
    "notif_body_document": {"fr": "Un nouveau document a été ajouté à votre dossier médical.",
                            "en": "A new document was added to your medical record."},
    "notif_title_appointment": {"fr": "Rappel de rendez-vous", "en": "Appointment reminder"},
    "notif_body_appointment": {"fr": "Vous avez un rendez-vous à venir. Consultez votre agenda.",
                               "en": "You have an upcoming appointment. See your agenda."},
    "notif_title_service": {"fr": "Services connectés", "en": "Connected services"},
    "notif_body_service": {"fr": "Un service connecté à votre profil demande votre attention.",
                           "en": "A service connected to your profile needs your attention."},
    "notif_body_service__consent_renewal": {
        "fr": "L'autorisation donnée à un service connecté arrive à échéance. Renouvelez-la pour continuer "
              "à l'utiliser.",
        "en": "The permission you gave a connected service is about to expire. Renew it to keep using it."},
    "notif_body_service__connected_services_review": {
        "fr": "Faites le point sur les services connectés à votre profil.",
        "en": "Take a moment to review the services connected to your profile."},
    "notif_body_service__service_dereferenced": {
        "fr": "Un service connecté à votre profil n'est plus référencé : il n'a plus accès à vos données.",
        "en": "A service connected to your profile is no longer referenced: it no longer has access to your data."},
    "notif_title_screening": {"fr": "Prévention", "en": "Prevention"},
    "notif_body_screening": {"fr": "Un examen de prévention vous est recommandé. Consultez votre agenda.",
                             "en": "A prevention check is recommended for you. See your agenda."},
    "notif_title_professional_access": {"fr": "Accès à votre profil", "en": "Access to your profile"},
    "notif_body_professional_access": {
        "fr": "Un professionnel de santé a accédé à votre profil. Consultez l'historique des accès.",
        "en": "A health professional accessed your profile. See the access history."},
    "notif_title_emergency_access": {"fr": "Accès en urgence à votre profil",
                                     "en": "Emergency access to your profile"},
    "notif_body_emergency_access": {
        "fr": "Votre profil a été consulté dans le cadre d'un accès en urgence. Consultez l'historique des "
              "accès.",
        "en": "Your profile was accessed in an emergency. See the access history."},
    "notif_title_account": {"fr": "Votre compte Carnet", "en": "Your Carnet account"},
    "notif_body_account": {"fr": "Une information concerne votre compte. Ouvrez l'application pour la lire.",
                           "en": "There is news about your account. Open the app to read it."},
    "notif_body_account__activation_code_expired": {
        "fr": "Le délai pour vous opposer est écoulé : votre profil Carnet a été créé. Pour l'utiliser, "
              "demandez un nouveau code d'activation. Vous pourrez aussi le fermer à tout moment.",
        "en": "The period to object has ended: your Carnet profile was created. To use it, ask for a new "
              "activation code. You can also close it at any time."},
    # email around a notification (bilingual: the outbox does not know the reader's language)
    "notif_email_subject": {"fr": "Carnet : {title}", "en": "Carnet: {title}"},
    "notif_email_body": {
        "fr": "Bonjour,\n\n{body}\n\nOuvrez l'application Carnet pour en savoir plus. Par sécurité, ce message "
              "ne contient aucune information médicale.\n\nVous pouvez choisir les notifications que vous "
              "recevez dans Paramètres > Notifications.",
        "en": "Hello,\n\n{body}\n\nOpen the Carnet app to find out more. For your security, this message "
              "contains no medical information.\n\nYou can choose which notifications you receive in "
              "Settings > Notifications."},
    # refusals
    "notification_kind_mandatory": {
        "fr": "Les notifications « {label} » ne peuvent pas être désactivées : vous êtes toujours prévenu(e) "
              "quand quelqu'un accède à votre profil.",
        "en": "“{label}” notifications cannot be switched off: you are always told when someone accesses "
              "your profile."},
    "notification_kind_unknown": {"fr": "Ce type de notification n'existe pas.",
                                  "en": "This kind of notification does not exist."},
    "notification_not_found": {"fr": "Cette notification n'existe pas.", "en": "This notification does not exist."},
    "push_subscription_invalid": {
        "fr": "L'abonnement aux notifications de cet appareil est invalide : {reason}.",
        "en": "This device's notification subscription is invalid: {reason}."},
    "push_subscription_not_found": {
        "fr": "Les notifications ne sont pas activées sur cet appareil.",
        "en": "Notifications are not enabled on this device."},
    "push_unavailable": {
        "fr": "Les notifications sur l'appareil ne sont pas disponibles pour le moment. Vous les retrouvez "
              "dans l'application.",
        "en": "Device notifications are not available at the moment. You will find them in the app."},
})


def kind_label(kind: str, lang: str | None = None) -> str:
    from backend.i18n import message

    return message(f"notif_kind_{kind}", lang)


def texts(kind: str, ref_type: str | None, lang: str | None = None) -> tuple[str, str]:
    """(title, body) of a notification: generic per kind, sometimes per kind of reference."""
    from backend.i18n import MESSAGES, message

    body_code = f"notif_body_{kind}__{ref_type}" if ref_type else ""
    if body_code not in MESSAGES:
        body_code = f"notif_body_{kind}"
    return message(f"notif_title_{kind}", lang), message(body_code, lang)
