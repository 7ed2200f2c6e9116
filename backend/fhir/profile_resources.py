"""The medical profile, consents and access history as FHIR R4 resources (pure functions).

Input is what ``records.profile.profile_for_export`` returns (plain dicts per kind, dates as ISO strings,
possibly partial), the record's ``Consent``/``Block`` rows and the audit entries. Each function returns a
resource dict; ``subject`` is the reference to the Patient entry of the same bundle.

Free text the patient typed goes in ``.text`` elements (no code system is invented); codes are used only
where the record holds a real one (LOINC for measures, v3 ActReason for purposes of use).
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from backend.fhir.resources import BASE, IDNPS_OID, LOINC_URL, instant

UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_POLICY = "http://terminology.hl7.org/CodeSystem/consentpolicycodes"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
CARNET_ACTION = f"{BASE}/CodeSystem/audit-action"
CARNET_PROFILE_KIND = f"{BASE}/CodeSystem/profile-kind"

RELATIVES = {"mother": ("MTH", "mère"), "father": ("FTH", "père"), "sibling": ("SIB", "frère ou sœur"),
             "child": ("CHILD", "enfant"), "grandparent": ("GRPRN", "grand-parent"),
             "uncle_aunt": ("EXT", "oncle ou tante"), "other": ("FAMMEMB", "autre membre de la famille")}
CONTACT_KINDS = {"emergency": ("C", "Personne à prévenir en cas d'urgence"),
                 "trusted_person": (None, "Personne de confiance"), "carer": (None, "Aidant"),
                 "helper": (None, "Personne qui aide")}
ORGAN_DONATION = {"not_stated": "Position non exprimée", "accepts": "Accepte le don d'organes",
                  "refuses": "Refuse le don d'organes (registre national des refus)",
                  "refuses_partially": "Refuse en partie le don d'organes"}
DIRECTIVE_CONTEXTS = {"good_health": "Directives anticipées (en bonne santé)",
                      "end_of_life": "Directives anticipées (en fin de vie ou maladie grave)"}


def _date(value: Any) -> str | None:
    """A profile date (``2019``, ``2019-05``, ``2019-05-14`` or a datetime) as a FHIR dateTime."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return instant(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _note(*texts: Any) -> list[dict[str, str]]:
    return [{"text": str(t)} for t in texts if t]


def _author_reference(author: dict[str, Any] | None) -> dict[str, Any] | None:
    if not author or author.get("kind") != "professional":
        return None
    ref: dict[str, Any] = {}
    if author.get("rpps"):
        ref["identifier"] = {"system": f"urn:oid:{IDNPS_OID}", "value": "8" + str(author["rpps"])}
    if author.get("name"):
        ref["display"] = str(author["name"])
    return ref or None


def _meta_fields(item: dict[str, Any], resource: dict[str, Any], element: str = "recorder") -> dict[str, Any]:
    """Who recorded it: a professional is named (the patient's own entries carry no recorder)."""
    reference = _author_reference(item.get("author"))
    if reference and element:
        resource[element] = reference
    return resource


def _verification(item: dict[str, Any], system: str) -> dict[str, Any]:
    code = "unconfirmed" if item.get("needs_confirmation") else "confirmed"
    return {"coding": [{"system": system, "code": code}]}


def allergy(item: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    f = item["fields"]
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance", "id": f"allergy-{item['id']}",
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "verificationStatus": _verification(item, VERIFICATION),
        "code": {"text": f.get("substance")}, "patient": subject,
        "recordedDate": instant(item.get("recorded_at"))}
    if f.get("category") in ("medication", "food", "environment", "biologic"):
        resource["category"] = [f["category"]]
    if f.get("since"):
        resource["onsetDateTime"] = _date(f["since"])
    if f.get("reaction") or f.get("severity"):
        reaction: dict[str, Any] = {"manifestation": [{"text": f.get("reaction") or "Réaction"}]}
        if f.get("severity"):
            reaction["severity"] = f["severity"]
        resource["reaction"] = [reaction]
    if f.get("comment"):
        resource["note"] = _note(f["comment"])
    return _meta_fields(item, resource)


def condition(item: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    """Diseases, hospitalisations and disabilities (the record's history)."""
    f, kind = item["fields"], item["kind"]
    label = f.get("label") or f.get("reason")
    code: dict[str, Any] = {"text": label}
    if f.get("code"):
        code["coding"] = [{"code": f["code"]}]
    start, end = f.get("onset_date") or f.get("start_date"), f.get("end_date")
    resolved = f.get("status") == "resolved" or (kind != "disability" and bool(end))
    resource: dict[str, Any] = {
        "resourceType": "Condition", "id": f"{kind.replace('_', '-')}-{item['id']}",
        "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "resolved" if resolved else "active"}]},
        "verificationStatus": _verification(item, CONDITION_VERIFICATION),
        "category": [{"coding": [{"system": CONDITION_CATEGORY,
                                  "code": "encounter-diagnosis" if kind == "hospitalisation" else "problem-list-item"}],
                      "text": {"disease": "Maladie", "hospitalisation": "Hospitalisation",
                               "disability": "Handicap"}.get(kind, kind)}],
        "code": code, "subject": subject, "recordedDate": instant(item.get("recorded_at"))}
    if start:
        resource["onsetDateTime"] = _date(start)
    if end:
        resource["abatementDateTime"] = _date(end)
    resource["note"] = _note(f.get("establishment") and f"Établissement : {f['establishment']}", f.get("comment"))
    if not resource["note"]:
        del resource["note"]
    return _meta_fields(item, resource, "recorder")


def family_history(item: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    f = item["fields"]
    code, label = RELATIVES.get(f.get("relative"), ("FAMMEMB", "membre de la famille"))
    resource: dict[str, Any] = {
        "resourceType": "FamilyMemberHistory", "id": f"family-history-{item['id']}", "status": "completed",
        "patient": subject, "relationship": {"coding": [{"system": ROLE_CODE, "code": code}], "text": label},
        "condition": [{"code": {"text": f.get("condition")}}]}
    if item.get("recorded_at"):
        resource["date"] = instant(item["recorded_at"])
    if f.get("comment"):
        resource["note"] = _note(f["comment"])
    return resource


def medication(item: dict[str, Any], subject: dict[str, Any], today: dt.date) -> dict[str, Any]:
    f = item["fields"]
    ended = bool(f.get("end_date")) and str(f["end_date"]) < today.isoformat()
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement", "id": f"treatment-{item['id']}",
        "status": "completed" if ended else "active",
        "medicationCodeableConcept": {"text": f.get("name")}, "subject": subject,
        "dateAsserted": instant(item.get("recorded_at"))}
    if f.get("start_date") or f.get("end_date"):
        period = {}
        if f.get("start_date"):
            period["start"] = _date(f["start_date"])
        if f.get("end_date"):
            period["end"] = _date(f["end_date"])
        resource["effectivePeriod"] = period
    if f.get("dosage"):
        resource["dosage"] = [{"text": f["dosage"]}]
    if f.get("reason"):
        resource["reasonCode"] = [{"text": f["reason"]}]
    if f.get("comment"):
        resource["note"] = _note(f["comment"])
    reference = _author_reference(item.get("author"))
    if reference:
        resource["informationSource"] = reference
    return resource


ATC_SYSTEM = "http://www.whocc.no/atc"


def immunization(item: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    f = item["fields"]
    vaccine: dict[str, Any] = {"text": f.get("vaccine")}
    if f.get("atc"):
        vaccine["coding"] = [{"system": ATC_SYSTEM, "code": str(f["atc"])}]
    resource: dict[str, Any] = {
        "resourceType": "Immunization", "id": f"vaccination-{item['id']}", "status": "completed",
        "vaccineCode": vaccine, "patient": subject,
        "occurrenceDateTime": _date(f.get("date")), "recorded": instant(item.get("recorded_at")),
        "primarySource": (item.get("author") or {}).get("kind") == "professional"}
    if item.get("needs_confirmation"):
        # proposed from a dispensed vaccine, not confirmed by the patient yet: not a first-hand record
        resource["primarySource"] = False
        resource["reportOrigin"] = {"text": "Proposé d'après une délivrance en pharmacie, non confirmé"}
    if f.get("batch"):
        resource["lotNumber"] = f["batch"]
    if f.get("dose"):
        resource["protocolApplied"] = [{"doseNumberString": str(f["dose"])}]
    if f.get("administered_by"):
        resource["performer"] = [{"actor": {"display": f["administered_by"]}}]
    if f.get("comment"):
        resource["note"] = _note(f["comment"])
    return resource


EMDN_SYSTEM = "urn:oid:1.2.250.1.213.2.68"   # European Medical Device Nomenclature, as the CI-SIS names it


def implant(item: dict[str, Any], subject: dict[str, Any], document_url: str | None) -> list[dict[str, Any]]:
    """An implanted device: the ``Device`` itself (what it is, model, lot/serial, UDI) and the
    ``DeviceUseStatement`` that says the patient carries it (since when, where, who implanted it, from
    which document)."""
    f = item["fields"]
    device_id = f"implant-{item['id']}"
    device: dict[str, Any] = {
        "resourceType": "Device", "id": device_id, "status": "active", "patient": subject,
        "deviceName": [{"name": str(f.get("device")), "type": "user-friendly-name"}],
        "type": {"text": str(f.get("device"))}}
    if f.get("device_code"):
        code = str(f["device_code"])
        # EMDN codes are a letter then digits (J010104); others (LPP, CLADIMED…) stay in the text
        if code[:1].isalpha() and code[1:].isdigit():
            device["type"]["coding"] = [{"system": EMDN_SYSTEM, "code": code}]
        else:
            device["type"]["text"] = f"{f.get('device')} ({code})"
    if f.get("brand_model"):
        device["deviceName"].append({"name": str(f["brand_model"]), "type": "model-name"})
    if f.get("udi"):
        device["udiCarrier"] = [{"carrierHRF": str(f["udi"])}]
    if f.get("lot_serial"):
        device["lotNumber"] = str(f["lot_serial"])
    use: dict[str, Any] = {
        "resourceType": "DeviceUseStatement", "id": f"implant-use-{item['id']}",
        "status": "active", "subject": subject, "device": {"reference": f"Device/{device_id}",
                                                            "display": str(f.get("device"))},
        "recordedOn": instant(item.get("recorded_at"))}
    if f.get("implant_date"):
        use["timingDateTime"] = _date(f["implant_date"])
    if f.get("site"):
        use["bodySite"] = {"text": str(f["site"])}
    author = _author_reference(item.get("author"))
    if author:
        use["source"] = author
    if document_url:
        use["derivedFrom"] = [{"reference": document_url}]
    notes = _note(f"Posé par : {f['implanted_by']}" if f.get("implanted_by") else None, f.get("comment"))
    if notes:
        use["note"] = notes
    return [device, use]


def _observation(rid: str, subject: dict[str, Any], code: dict[str, Any], category: str,
                 effective: Any, item: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": rid, "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
        "code": code, "subject": subject}
    if effective:
        resource["effectiveDateTime"] = _date(effective)
    reference = _author_reference(item.get("author"))
    if reference:
        resource["performer"] = [reference]
    return resource


def _quantity(value: Any, unit: str, ucum: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": ucum}


def measure(item: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    loinc = item.get("unit_loinc") or item["loinc"]
    resource = _observation(f"measure-{item['id']}", subject,
                            {"coding": [{"system": LOINC_URL, "code": loinc}], "text": item["type"]},
                            "vital-signs" if item["type"] not in ("steps", "hba1c", "glucose", "pain")
                            else "activity" if item["type"] == "steps" else
                            "laboratory" if item["type"] in ("hba1c", "glucose") else "survey",
                            item.get("measured_at"), item)
    if item.get("components"):
        resource["component"] = [
            {"code": {"coding": [{"system": LOINC_URL, "code": c["loinc"]}], "text": c["name"]},
             **({"valueQuantity": _quantity(c["value"], item["unit"], item["ucum"])} if c.get("value") is not None
                else {"dataAbsentReason": {"text": "non renseigné"}})}
            for c in item["components"]]
    elif item.get("value") is not None:
        resource["valueQuantity"] = _quantity(item["value"], item["unit"], item["ucum"])
    if item.get("note"):
        resource["note"] = _note(item["note"])
    return resource


def blood_group(item: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    f = item["fields"]
    text = f"{f.get('group', '')}{'+' if f.get('rhesus') == 'positive' else '-' if f.get('rhesus') else ''}"
    code = {"coding": [{"system": LOINC_URL, "code": "882-1"}], "text": "Groupe sanguin ABO et rhésus"}
    resource = _observation(f"blood-group-{item['id']}", subject, code, "laboratory", item.get("recorded_at"), item)
    resource["valueCodeableConcept"] = {"text": text}
    return resource


def statement(item: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    """Lifestyle and the patient's wishes: what the patient states, as text."""
    f, kind = item["fields"], item["kind"]
    if kind == "lifestyle":
        code = {"coding": [{"system": CARNET_PROFILE_KIND, "code": f"lifestyle-{f.get('topic')}"}],
                "text": f"Mode de vie : {f.get('topic')}"}
        value, category = f.get("description"), "social-history"
    else:
        code = {"coding": [{"system": CARNET_PROFILE_KIND, "code": kind}], "text": "Volonté du patient"}
        value, category = f.get("text"), "survey"
    resource = _observation(f"{kind.replace('_', '-')}-{item['id']}", subject, code, category,
                            item.get("recorded_at"), item)
    resource["valueString"] = str(value or "")
    return resource


def organ_donation(item: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    resource = _observation(f"organ-donation-{item['id']}", subject,
                            {"coding": [{"system": CARNET_PROFILE_KIND, "code": "organ_donation"}],
                             "text": "Position sur le don d'organes"},
                            "social-history", item.get("created_at"), item)
    resource["valueString"] = ORGAN_DONATION.get(item.get("position") or "", str(item.get("position")))
    notes = _note(item.get("informed_at") and f"Informé(e) le {item['informed_at']}", item.get("comment"))
    if notes:
        resource["note"] = notes
    return resource


def contact(item: dict[str, Any]) -> dict[str, Any]:
    """A contact of the patient, as a ``Patient.contact`` element."""
    f = item["fields"]
    code, label = CONTACT_KINDS.get(f.get("contact_kind"), (None, "Contact"))
    relationship: dict[str, Any] = {"text": label}
    if code:
        relationship["coding"] = [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": code}]
    out: dict[str, Any] = {"relationship": [relationship]}
    if f.get("relationship"):
        out["relationship"].append({"text": f["relationship"]})
    if f.get("name"):
        out["name"] = {"text": f["name"]}
    telecom = [{"system": s, "value": f[k]} for k, s in (("phone", "phone"), ("email", "email")) if f.get(k)]
    if telecom:
        out["telecom"] = telecom
    return out


def directive(item: dict[str, Any], subject: dict[str, Any], document_url: str | None) -> dict[str, Any]:
    """One dated version of the advance directives: a Consent of scope "adr"."""
    import base64

    resource: dict[str, Any] = {
        "resourceType": "Consent", "id": f"directive-{item['id']}",
        "status": "inactive" if item.get("withdrawn") else "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "adr"}]},
        "category": [{"coding": [{"system": LOINC_URL, "code": "75320-2"}],
                      "text": DIRECTIVE_CONTEXTS.get(item.get("context"), "Directives anticipées")}],
        "patient": subject, "dateTime": instant(item.get("created_at") or item.get("recorded_at")),
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]}}
    if item.get("text"):
        resource["sourceAttachment"] = {"contentType": "text/plain; charset=utf-8",
                                        "data": base64.b64encode(str(item["text"]).encode()).decode(),
                                        "title": f"Version {item.get('version')}"}
    elif document_url:
        resource["sourceReference"] = {"reference": document_url}
    return resource


def authorisation(consent: Any, pro: Any, subject: dict[str, Any]) -> dict[str, Any]:
    """The patient authorises a professional to read the record (or did, until revoked)."""
    provision: dict[str, Any] = {"type": "permit", "actor": [{
        "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "PROV"}]},
        "reference": {"identifier": {"system": f"urn:oid:{IDNPS_OID}", "value": "8" + pro.rpps},
                      "display": pro.display_name}}],
        "period": {"start": instant(consent.granted_at)}}
    if consent.revoked_at:
        provision["period"]["end"] = instant(consent.revoked_at)
    return {"resourceType": "Consent", "id": f"consent-{consent.id}",
            "status": "inactive" if consent.revoked_at else "active",
            "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": LOINC_URL, "code": "59284-0"}],
                          "text": "Autorisation d'accès au dossier"}],
            "patient": subject, "dateTime": instant(consent.granted_at),
            "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]}, "provision": provision}


def block(row: Any, subject: dict[str, Any]) -> dict[str, Any]:
    """The patient blocks a professional by RPPS (deny, emergencies included)."""
    provision: dict[str, Any] = {"type": "deny", "actor": [{
        "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "PROV"}]},
        "reference": {"identifier": {"system": f"urn:oid:{IDNPS_OID}", "value": "8" + row.rpps}}}],
        "period": {"start": instant(row.created_at)}}
    if row.removed_at:
        provision["period"]["end"] = instant(row.removed_at)
    return {"resourceType": "Consent", "id": f"block-{row.id}",
            "status": "inactive" if row.removed_at else "active",
            "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": LOINC_URL, "code": "59284-0"}],
                          "text": "Blocage d'un professionnel"}],
            "patient": subject, "dateTime": instant(row.created_at),
            "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTOUT"}]}, "provision": provision}


_ACTIONS = {"read": "R", "search": "E", "stored": "C", "provided": "C", "created": "C", "released": "U",
            "exported": "E", "deleted": "D"}


def audit_event(entry: Any, subject: dict[str, Any]) -> dict[str, Any]:
    """One line of the access history (who, when, what, why) as an AuditEvent."""
    words = entry.action.split(".")
    refused = words[-1] == "refused"
    action = next((_ACTIONS[w] for w in reversed(words) if w in _ACTIONS), "E")
    agent: dict[str, Any] = {"requestor": True, "type": {"text": entry.actor_type}}
    if entry.actor_type == "professional" and entry.actor_id:
        agent["who"] = {"identifier": {"system": f"urn:oid:{IDNPS_OID}", "value": "8" + entry.actor_id}}
    elif entry.actor_type == "patient":
        agent["who"] = subject
    elif entry.actor_id:
        agent["who"] = {"display": f"{entry.actor_type} {entry.actor_id}"}
    else:
        agent["who"] = {"display": entry.actor_type}
    if entry.purpose:
        agent["purposeOfUse"] = [{"coding": [{"system": ACT_REASON, "code": entry.purpose}]}]
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent", "id": f"audit-{entry.seq}",
        "type": {"system": AUDIT_TYPE, "code": "rest"},
        "subtype": [{"system": CARNET_ACTION, "code": entry.action}],
        "action": action, "recorded": instant(entry.at), "outcome": "4" if refused else "0",
        "agent": [agent], "source": {"observer": {"display": "Carnet"}}}
    entity: dict[str, Any] = {"what": subject}
    details = json.loads(entry.details) if entry.details else {}
    detail = [{"type": str(k), "valueString": v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}
              for k, v in sorted(details.items()) if v is not None]
    if detail:
        entity["detail"] = detail
    resource["entity"] = [entity]
    if entry.purpose:
        resource["purposeOfEvent"] = [{"coding": [{"system": ACT_REASON, "code": entry.purpose}]}]
    return resource
