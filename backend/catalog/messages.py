"""Patient-facing texts of the catalogue (French first, English on request)."""
from __future__ import annotations

from backend.i18n import message, register_messages
from backend.records.access import messages as messages_access  # noqa: F401  (the document category labels)

register_messages({
    # themes
    "catalog_theme_chronic_disease": {"fr": "Maladies chroniques", "en": "Chronic diseases"},
    "catalog_theme_teleconsultation": {"fr": "Téléconsultation", "en": "Teleconsultation"},
    "catalog_theme_pharmacy": {"fr": "Pharmacie et médicaments", "en": "Pharmacy and medicines"},
    "catalog_theme_vaccination": {"fr": "Vaccination", "en": "Vaccination"},
    "catalog_theme_pregnancy": {"fr": "Grossesse et parentalité", "en": "Pregnancy and parenthood"},
    "catalog_theme_mental_health": {"fr": "Santé mentale", "en": "Mental health"},
    "catalog_theme_physical_activity": {"fr": "Activité physique", "en": "Physical activity"},
    "catalog_theme_addiction": {"fr": "Addictions et tabac", "en": "Addiction and smoking"},
    "catalog_theme_hearing": {"fr": "Audition", "en": "Hearing"},
    "catalog_theme_sleep": {"fr": "Sommeil", "en": "Sleep"},
    "catalog_theme_nutrition": {"fr": "Nutrition", "en": "Nutrition"},
    "catalog_theme_prevention": {"fr": "Prévention et dépistage", "en": "Prevention and screening"},
    "catalog_theme_ageing": {"fr": "Bien vieillir", "en": "Healthy ageing"},
    "catalog_theme_disability": {"fr": "Handicap", "en": "Disability"},
    "catalog_theme_caregivers": {"fr": "Aidants", "en": "Carers"},
    # regions (INSEE codes)
    "catalog_region_national": {"fr": "Toute la France", "en": "All of France"},
    "catalog_region_84": {"fr": "Auvergne-Rhône-Alpes", "en": "Auvergne-Rhône-Alpes"},
    "catalog_region_27": {"fr": "Bourgogne-Franche-Comté", "en": "Bourgogne-Franche-Comté"},
    "catalog_region_53": {"fr": "Bretagne", "en": "Brittany"},
    "catalog_region_24": {"fr": "Centre-Val de Loire", "en": "Centre-Val de Loire"},
    "catalog_region_94": {"fr": "Corse", "en": "Corsica"},
    "catalog_region_44": {"fr": "Grand Est", "en": "Grand Est"},
    "catalog_region_32": {"fr": "Hauts-de-France", "en": "Hauts-de-France"},
    "catalog_region_11": {"fr": "Île-de-France", "en": "Île-de-France"},
    "catalog_region_28": {"fr": "Normandie", "en": "Normandy"},
    "catalog_region_75": {"fr": "Nouvelle-Aquitaine", "en": "Nouvelle-Aquitaine"},
    "catalog_region_76": {"fr": "Occitanie", "en": "Occitanie"},
    "catalog_region_52": {"fr": "Pays de la Loire", "en": "Pays de la Loire"},
    "catalog_region_93": {"fr": "Provence-Alpes-Côte d'Azur", "en": "Provence-Alpes-Côte d'Azur"},
    "catalog_region_01": {"fr": "Guadeloupe", "en": "Guadeloupe"},
    "catalog_region_02": {"fr": "Martinique", "en": "Martinique"},
    "catalog_region_03": {"fr": "Guyane", "en": "French Guiana"},
    "catalog_region_04": {"fr": "La Réunion", "en": "Réunion"},
    "catalog_region_06": {"fr": "Mayotte", "en": "Mayotte"},
    # statuses
    "catalog_status_online": {"fr": "Disponible", "en": "Available"},
    "catalog_status_offline": {"fr": "Temporairement indisponible", "en": "Temporarily unavailable"},
    "catalog_status_suspended": {"fr": "Suspendu", "en": "Suspended"},
    "catalog_status_dereferenced": {"fr": "Déréférencé", "en": "No longer referenced"},
    "catalog_state_active": {"fr": "Connecté", "en": "Connected"},
    "catalog_state_expired": {"fr": "Autorisation expirée", "en": "Permission expired"},
    "catalog_state_revoked": {"fr": "Déconnecté", "en": "Disconnected"},
    # permissions
    "catalog_permission_documents_read": {"fr": "Lire vos documents : {item}", "en": "Read your documents: {item}"},
    "catalog_permission_measures_read": {"fr": "Lire vos mesures : {item}", "en": "Read your measures: {item}"},
    "catalog_permission_measures_write": {"fr": "Ajouter des mesures : {item}", "en": "Add measures: {item}"},
    "catalog_permission_profile_read": {"fr": "Lire votre profil médical : {item}",
                                        "en": "Read your medical profile: {item}"},
    "catalog_measure_weight": {"fr": "poids", "en": "weight"},
    "catalog_measure_height": {"fr": "taille", "en": "height"},
    "catalog_measure_waist": {"fr": "tour de taille", "en": "waist"},
    "catalog_measure_temperature": {"fr": "température", "en": "temperature"},
    "catalog_measure_glucose": {"fr": "glycémie", "en": "blood glucose"},
    "catalog_measure_blood_pressure": {"fr": "tension artérielle", "en": "blood pressure"},
    "catalog_measure_heart_rate": {"fr": "fréquence cardiaque", "en": "heart rate"},
    "catalog_measure_pain": {"fr": "douleur", "en": "pain"},
    "catalog_measure_head_circumference": {"fr": "périmètre crânien", "en": "head circumference"},
    "catalog_measure_steps": {"fr": "nombre de pas", "en": "steps"},
    "catalog_measure_hba1c": {"fr": "hémoglobine glyquée (HbA1c)", "en": "HbA1c"},
    "catalog_measure_oxygen_saturation": {"fr": "saturation en oxygène", "en": "oxygen saturation"},
    "catalog_profile_allergy": {"fr": "allergies", "en": "allergies"},
    "catalog_profile_treatment": {"fr": "traitements", "en": "treatments"},
    "catalog_profile_vaccination": {"fr": "vaccinations", "en": "vaccinations"},
    "catalog_report_not_working": {"fr": "Le service ne fonctionne pas", "en": "The service does not work"},
    "catalog_report_misleading": {"fr": "Informations trompeuses", "en": "Misleading information"},
    "catalog_report_privacy": {"fr": "Utilisation de mes données", "en": "Use of my data"},
    "catalog_report_security": {"fr": "Problème de sécurité", "en": "Security problem"},
    "catalog_report_inappropriate": {"fr": "Contenu inapproprié", "en": "Inappropriate content"},
    "catalog_report_other": {"fr": "Autre raison", "en": "Other reason"},
    # refusals
    "catalog_service_not_found": {"fr": "Ce service n'est pas référencé dans le catalogue.",
                                  "en": "This service is not in the catalogue."},
    "catalog_service_unavailable": {"fr": "Ce service n'accepte pas de nouvelle connexion pour le moment.",
                                    "en": "This service does not accept new connections at the moment."},
    "catalog_no_permission": {"fr": "Cochez au moins une autorisation pour connecter ce service.",
                              "en": "Tick at least one permission to connect this service."},
    "catalog_permission_not_asked": {"fr": "Ce service ne demande pas l'autorisation « {scope} ».",
                                     "en": "This service does not ask for the permission \"{scope}\"."},
    "catalog_not_connected": {"fr": "Vous n'êtes pas connecté à ce service.",
                              "en": "You are not connected to this service."},
    "catalog_cannot_renew": {"fr": "L'autorisation de ce service ne peut pas être renouvelée : il n'est plus "
                                   "disponible dans le catalogue.",
                             "en": "This service's permission cannot be renewed: it is no longer available."},
    "catalog_unknown_theme": {"fr": "Thème inconnu : {value}.", "en": "Unknown theme: {value}."},
    "catalog_unknown_region": {"fr": "Région inconnue : {value}.", "en": "Unknown region: {value}."},
    "catalog_oauth_error": {"fr": "Demande d'autorisation invalide : {description}",
                            "en": "Invalid authorisation request: {description}"},
    "catalog_oauth_invalid_characters": {
        "fr": "Demande d'autorisation invalide : le paramètre {name} contient des caractères non autorisés "
              "(caractères ASCII imprimables attendus, sans guillemet ni barre oblique inverse).",
        "en": "Invalid authorisation request: parameter {name} contains characters that are not allowed "
              "(printable ASCII expected, without double quote or backslash)."},
    # the service API
    "catalog_insufficient_scope": {"fr": "Le patient n'a pas autorisé ce service à faire cela.",
                                   "en": "The patient has not allowed this service to do this."},
    "catalog_invalid_token": {"fr": "Jeton d'accès invalide, expiré ou retiré.",
                              "en": "The access token is invalid, expired or withdrawn."},
    "catalog_unknown_observation_code": {"fr": "Code d'observation non pris en charge : {code}.",
                                         "en": "Unsupported observation code: {code}."},
    "catalog_invalid_observation": {"fr": "Observation invalide : {reason}.", "en": "Invalid observation: {reason}."},
    # the access history
    "history_action_catalog_connected": {"fr": "Connexion d'un service", "en": "Service connected"},
    "history_action_catalog_renewed": {"fr": "Autorisation d'un service renouvelée", "en": "Service permission renewed"},
    "history_action_catalog_revoked": {"fr": "Service déconnecté", "en": "Service disconnected"},
    "history_action_catalog_reported": {"fr": "Signalement d'un service", "en": "Service reported"},
    "history_action_catalog_token_issued": {"fr": "Accès ouvert à un service connecté",
                                            "en": "Access opened to a connected service"},
    "history_action_profile_measures_read": {"fr": "Consultation de vos mesures", "en": "Measures read"},
    "history_action_profile_measure_written": {"fr": "Ajout d'une mesure", "en": "Measure added"},
    "history_family_catalog": {"fr": "Services connectés", "en": "Connected services"},
})


def permission_label(scope: str, lang: str | None = None) -> str:
    from backend.catalog.vocabulary import permission

    p = permission(scope)
    if p is None:
        return scope
    if p.area == "documents":
        item = message(f"access_category_{p.item}", lang)
    elif p.area == "measures":
        item = message(f"catalog_measure_{p.item}", lang)
    else:
        item = message(f"catalog_profile_{p.item}", lang)
    return message(f"catalog_permission_{p.area}_{p.access}", lang, item=item)
