"""What the agenda says to patients and professionals: French first, English available."""
from __future__ import annotations

from backend.i18n import register_messages

register_messages({
    # availability (professional API)
    "agenda_invalid_schedule": {
        "fr": "Les disponibilités envoyées sont invalides : {reason}.",
        "en": "The availability sent is invalid: {reason}."},
    "agenda_invalid_rrule": {
        "fr": "La règle de récurrence (RRULE) est invalide : {reason}.",
        "en": "The recurrence rule (RRULE) is invalid: {reason}."},
    "agenda_unknown_timezone": {
        "fr": "Fuseau horaire inconnu : {tz}.", "en": "Unknown time zone: {tz}."},
    "agenda_schedule_not_found": {
        "fr": "Cet agenda n'existe pas.", "en": "This schedule does not exist."},
    "agenda_professional_token": {
        "fr": "Un jeton professionnel valide est nécessaire (en-tête Authorization: Bearer).",
        "en": "A valid professional token is required (Authorization: Bearer header)."},
    "agenda_patient_not_found": {
        "fr": "Aucun patient ne correspond à cet identifiant INS.",
        "en": "No patient matches this INS identifier."},
    "agenda_invalid_resource": {
        "fr": "La ressource FHIR envoyée est invalide : {reason}.",
        "en": "The FHIR resource sent is invalid: {reason}."},
    # booking
    "agenda_slot_not_found": {
        "fr": "Ce créneau n'existe pas ou n'est plus proposé.",
        "en": "This slot does not exist or is no longer offered."},
    "agenda_slot_taken": {
        "fr": "Ce créneau vient d'être réservé par quelqu'un d'autre. Choisissez un autre créneau.",
        "en": "This slot has just been booked by someone else. Please choose another slot."},
    "agenda_slot_past": {
        "fr": "Ce créneau est déjà passé.", "en": "This slot is in the past."},
    "agenda_slot_too_far": {
        "fr": "Ce créneau est trop lointain : la réservation est ouverte {days} jours à l'avance.",
        "en": "This slot is too far ahead: booking opens {days} days in advance."},
    "agenda_appointment_not_found": {
        "fr": "Ce rendez-vous n'existe pas.", "en": "This appointment does not exist."},
    "agenda_already_cancelled": {
        "fr": "Ce rendez-vous est déjà annulé.", "en": "This appointment is already cancelled."},
    "agenda_cutoff_passed": {
        "fr": "Il est trop tard pour modifier ce rendez-vous en ligne (moins de {hours} heures avant). "
              "Contactez directement le cabinet.",
        "en": "It is too late to change this appointment online (less than {hours} hours before). "
              "Please contact the practice directly."},
    "agenda_reschedule_other_professional": {
        "fr": "Un rendez-vous ne peut être déplacé que vers un créneau du même professionnel.",
        "en": "An appointment can only be moved to a slot of the same professional."},
    "agenda_not_a_personal_entry": {
        "fr": "Seuls vos rendez-vous personnels peuvent être modifiés ou supprimés ainsi.",
        "en": "Only your personal entries can be edited or deleted this way."},
    "agenda_search_window": {
        "fr": "La recherche porte sur {max_days} jours au plus.",
        "en": "A search covers at most {max_days} days."},
    "agenda_date_out_of_range": {
        "fr": "La date doit être comprise entre 1970 et 2199.", "en": "The date must be between 1970 and 2199."},
    "agenda_end_before_start": {
        "fr": "La fin doit être après le début.", "en": "The end must be after the start."},
    # prevention
    "agenda_prevention_unknown": {
        "fr": "Cette action de prévention n'existe pas.", "en": "This prevention item does not exist."},
    "agenda_prevention_done_in_future": {
        "fr": "La date de réalisation ne peut pas être dans le futur.",
        "en": "The date done cannot be in the future."},
    # calendar export and import
    "agenda_feed_not_found": {
        "fr": "Ce lien d'abonnement n'existe pas ou a été révoqué.",
        "en": "This subscription link does not exist or was revoked."},
    "agenda_ics_too_large": {
        "fr": "Ce fichier de calendrier est trop volumineux ({max_kib} Kio au plus).",
        "en": "This calendar file is too large (at most {max_kib} KiB)."},
    "agenda_ics_invalid": {
        "fr": "Ce fichier n'est pas un calendrier iCalendar (.ics) lisible : {reason}.",
        "en": "This file is not a readable iCalendar (.ics) calendar: {reason}."},
    "agenda_ics_no_events": {
        "fr": "Ce calendrier ne contient aucun rendez-vous à importer (seuls ceux d'il y a moins d'un an "
              "à dans deux ans le sont).",
        "en": "This calendar contains no event to import (only those from a year ago to two years ahead are)."},
    "agenda_ics_too_many": {
        "fr": "Ce calendrier contient trop de rendez-vous ({max_events} au plus par import).",
        "en": "This calendar contains too many events (at most {max_events} per import)."},
    "agenda_ics_missing_file": {
        "fr": "Joignez un fichier .ics (champ « file »).", "en": "Attach an .ics file (field \"file\")."},
    # labels
    "agenda_visit_in_person": {"fr": "Au cabinet", "en": "In person"},
    "agenda_visit_teleconsultation": {"fr": "Téléconsultation", "en": "Teleconsultation"},
    "agenda_discreet_title": {"fr": "Rendez-vous médical", "en": "Medical appointment"},
    "agenda_calendar_name": {"fr": "Carnet — agenda santé", "en": "Carnet — health agenda"},
    "agenda_status_to_plan": {"fr": "À planifier", "en": "To plan"},
    "agenda_status_done": {"fr": "Fait", "en": "Done"},
    "agenda_status_not_done": {"fr": "Non fait", "en": "Not done"},
    "agenda_consultation_with": {"fr": "Consultation — {name}", "en": "Appointment — {name}"},
})
