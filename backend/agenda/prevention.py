"""Prevention: which exams and vaccinations are recommended to a person of a given age and sex, and
the patient's status for each (To plan / Done / Not done).

The rules are data (one table below), from the public French programmes: "Mes bilans prévention" at
18–25, 45–50, 60–65 and 70–75; the organised cancer screenings (breast, colorectal, cervical); the
vaccination calendar's basics (Calendrier des vaccinations 2025: adult dTP boosters at 25, 45, 65 then
every 10 years, yearly flu and Covid-19 from 65, pneumococcus and shingles from 65; the 6 and 11–13
years boosters, HPV and meningococcus ACWY at 11–14); and "M'T dents" dental checks at 3, 6, 9 … 24.
Infants' vaccinations (counted in months) are left to the child's health booklet.

Ages are inclusive ranges of years: "50–74" is from the 50th birthday to the eve of the 75th.

Vaccinations recorded in the profile follow the calendar: a confirmed vaccination whose ATC code belongs
to a rule (``VACCINE_ATC``) and whose date falls in the rule's age range marks it done on that date (a
vaccine the pharmacy dispensed proposes such a vaccination; once the patient confirms it, the item
follows). What the patient marked by hand stays, unless a vaccination is more recent.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.accounts.models import Patient
from backend.agenda.availability import local_day_bounds
from backend.agenda.models import Appointment, PreventionMark
from backend.agenda.service import AgendaSettings, EntryInput, add_entry, update_entry
from backend.identity import age_on, birthday
from backend.errors import DomainError, NotFound

STATUSES = ("to_plan", "done", "not_done")


@dataclass(frozen=True)
class Rule:
    code: str
    category: str  # check | screening | vaccination | dental
    label_fr: str
    label_en: str
    from_age: int
    to_age: int
    sex: str | None = None  # "F", "M" or both
    every_months: int | None = None  # recurring within the age range

    def label(self, lang: str) -> str:
        return self.label_en if lang == "en" else self.label_fr


def _rules() -> tuple[Rule, ...]:
    rules = [
        Rule("bilan_18_25", "check", "Bilan prévention 18–25 ans", "Prevention check-up (18–25)", 18, 25),
        Rule("bilan_45_50", "check", "Bilan prévention 45–50 ans", "Prevention check-up (45–50)", 45, 50),
        Rule("bilan_60_65", "check", "Bilan prévention 60–65 ans", "Prevention check-up (60–65)", 60, 65),
        Rule("bilan_70_75", "check", "Bilan prévention 70–75 ans", "Prevention check-up (70–75)", 70, 75),
        Rule("depistage_sein", "screening", "Dépistage organisé du cancer du sein (mammographie, tous les 2 ans)",
             "Organised breast cancer screening (mammogram, every 2 years)", 50, 74, "F", 24),
        Rule("depistage_colorectal", "screening",
             "Dépistage organisé du cancer colorectal (test immunologique, tous les 2 ans)",
             "Organised colorectal cancer screening (FIT test, every 2 years)", 50, 74, None, 24),
        Rule("depistage_col_cytologie", "screening",
             "Dépistage du cancer du col de l'utérus (examen cytologique, tous les 3 ans)",
             "Cervical cancer screening (cytology, every 3 years)", 25, 29, "F", 36),
        Rule("depistage_col_hpv", "screening",
             "Dépistage du cancer du col de l'utérus (test HPV, tous les 5 ans)",
             "Cervical cancer screening (HPV test, every 5 years)", 30, 65, "F", 60),
        Rule("vaccin_dtcap_6", "vaccination", "Rappel diphtérie, tétanos, coqueluche, polio (6 ans)",
             "Diphtheria, tetanus, pertussis, polio booster (age 6)", 6, 10),
        Rule("vaccin_dtcap_11", "vaccination", "Rappel diphtérie, tétanos, coqueluche, polio (11–13 ans)",
             "Diphtheria, tetanus, pertussis, polio booster (age 11–13)", 11, 13),
        Rule("vaccin_hpv", "vaccination", "Vaccination contre les papillomavirus (HPV), 11–14 ans, rattrapage jusqu'à 19 ans",
             "HPV vaccination, age 11–14, catch-up until 19", 11, 19),
        Rule("vaccin_meningo_acwy", "vaccination", "Vaccination méningocoques ACWY (11–14 ans, rattrapage jusqu'à 24 ans)",
             "Meningococcal ACWY vaccination (age 11–14, catch-up until 24)", 11, 24),
        Rule("vaccin_dtcap_25", "vaccination", "Rappel diphtérie, tétanos, polio et coqueluche (25 ans)",
             "Diphtheria, tetanus, polio and pertussis booster (age 25)", 25, 44),
        Rule("vaccin_dtp_45", "vaccination", "Rappel diphtérie, tétanos, polio (45 ans)",
             "Diphtheria, tetanus, polio booster (age 45)", 45, 64),
        Rule("vaccin_dtp_65", "vaccination", "Rappel diphtérie, tétanos, polio (65 ans)",
             "Diphtheria, tetanus, polio booster (age 65)", 65, 74),
        Rule("vaccin_grippe", "vaccination", "Vaccination contre la grippe (chaque année à partir de 65 ans)",
             "Flu vaccination (every year from 65)", 65, 130, None, 12),
        Rule("vaccin_covid", "vaccination", "Vaccination contre le Covid-19 (chaque automne à partir de 65 ans)",
             "Covid-19 vaccination (every autumn from 65)", 65, 130, None, 12),
        Rule("vaccin_pneumocoque", "vaccination", "Vaccination contre le pneumocoque (à partir de 65 ans)",
             "Pneumococcal vaccination (from 65)", 65, 130),
        Rule("vaccin_zona", "vaccination", "Vaccination contre le zona (à partir de 65 ans)",
             "Shingles vaccination (from 65)", 65, 130),
    ]
    # dTP boosters every 10 years after 65: 75, 85, 95 …
    for age in range(75, 126, 10):
        rules.append(Rule(f"vaccin_dtp_{age}", "vaccination", f"Rappel diphtérie, tétanos, polio ({age} ans)",
                          f"Diphtheria, tetanus, polio booster (age {age})", age, age + 9))
    for age in range(3, 25, 3):
        rules.append(Rule(f"examen_dentaire_{age}", "dental", f"Examen bucco-dentaire M'T dents ({age} ans)",
                          f"Free dental check-up (age {age})", age, age))
    return tuple(rules)


RULES: tuple[Rule, ...] = _rules()
RULES_BY_CODE = {rule.code: rule for rule in RULES}

# ATC classes (WHO) of the vaccines each vaccination rule is about.
_DTP = ("J07CA",)   # diphtheria-tetanus combinations (dTP, dTcaP)
VACCINE_ATC: dict[str, tuple[str, ...]] = {
    "vaccin_grippe": ("J07BB",), "vaccin_covid": ("J07BN", "J07BX03"), "vaccin_pneumocoque": ("J07AL",),
    "vaccin_zona": ("J07BK02", "J07BK03"), "vaccin_hpv": ("J07BM",), "vaccin_meningo_acwy": ("J07AH04", "J07AH08"),
    **{rule.code: _DTP for rule in RULES if rule.code.startswith(("vaccin_dtp_", "vaccin_dtcap_"))},
}


@dataclass(frozen=True)
class Vaccination:
    """A vaccination the record holds as a fact (confirmed, not hidden): what the calendar follows."""

    atc: str
    on: dt.date
    entry_id: int | None = None


def _vaccinated(rule: Rule, start: dt.date, end: dt.date,
                vaccinations: tuple[Vaccination, ...]) -> Vaccination | None:
    """The latest vaccination that satisfies ``rule`` within its age range."""
    prefixes = VACCINE_ATC.get(rule.code)
    if not prefixes:
        return None
    found = [v for v in vaccinations if v.atc.upper().startswith(prefixes) and start <= v.on <= end]
    return max(found, key=lambda v: v.on) if found else None


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise ValueError(day)  # pragma: no cover


@dataclass
class Item:
    rule: Rule
    due_from: dt.date
    due_until: dt.date
    status: str
    done_on: dt.date | None
    next_due_on: dt.date | None
    planned_on: dt.date | None
    appointment_id: int | None
    vaccination_entry_id: int | None = None   # done according to this profile entry


def applies(rule: Rule, sex: str) -> bool:
    return rule.sex is None or rule.sex == sex


def recommended(birth: dt.date, sex: str, today: dt.date,
                marks: dict[str, PreventionMark] | None = None,
                vaccinations: tuple[Vaccination, ...] = ()) -> list[Item]:
    """The items whose age range contains today, with the patient's status applied.

    A recurring item done more than its interval ago is "to plan" again (the last date is kept). A
    vaccination of the rule's kind given within its age range marks it done, unless the patient marked it
    done later by hand.
    """
    marks = marks or {}
    age = age_on(birth, today)
    items = []
    for rule in RULES:
        if not applies(rule, sex) or not rule.from_age <= age <= rule.to_age:
            continue
        mark = marks.get(rule.code)
        status = mark.status if mark else "to_plan"
        done_on = mark.done_on if mark else None
        due_from = birthday(birth, rule.from_age)
        due_until = birthday(birth, rule.to_age + 1) - dt.timedelta(days=1)
        given = _vaccinated(rule, due_from, min(due_until, today), vaccinations)
        if given is not None and (status != "done" or done_on is None or given.on > done_on):
            status, done_on = "done", given.on
        else:
            given = None
        next_due = add_months(done_on, rule.every_months) if (rule.every_months and done_on) else None
        if status == "done" and next_due is not None and next_due <= today:
            status = "to_plan"
        items.append(Item(rule, due_from, due_until, status, done_on, next_due, mark.planned_on if mark else None,
                          mark.appointment_id if mark else None, given.entry_id if given else None))
    order = {"check": 0, "screening": 1, "vaccination": 2, "dental": 3}
    items.sort(key=lambda i: (order[i.rule.category], i.rule.from_age, i.rule.code))
    return items


def marks_for(session: Session, patient_id: int) -> dict[str, PreventionMark]:
    return {m.item_code: m for m in session.scalars(select(PreventionMark).where(PreventionMark.patient_id == patient_id))}


def items_for(session: Session, patient: Patient, today: dt.date,
              vaccinations: tuple[Vaccination, ...] = ()) -> list[Item]:
    return recommended(patient.birth_date, patient.sex, today, marks_for(session, patient.id), vaccinations)


def vaccinations_from(entries: list[dict]) -> tuple[Vaccination, ...]:
    """The profile's confirmed vaccinations (``records.profile.confirmed_vaccinations``) that the calendar can
    follow: an ATC code and a full date (a month or a year alone cannot place it in an age range)."""
    out = []
    for entry in entries:
        atc, date = entry.get("atc"), entry.get("date")
        if not atc or not isinstance(date, str) or len(date) != 10:
            continue
        try:
            out.append(Vaccination(str(atc), dt.date.fromisoformat(date), entry.get("id")))
        except ValueError:
            continue
    return tuple(out)


def mark(session: Session, patient: Patient, code: str, status: str, *, today: dt.date, now: dt.datetime,
         done_on: dt.date | None = None, planned_on: dt.date | None = None,
         appointment_id: int | None = None, add_to_agenda: AgendaSettings | None = None,
         lang: str = "fr") -> PreventionMark:
    """Mark an item done / not done, or plan it: a date, and with ``add_to_agenda`` (the agenda's
    settings) an all-day entry in the agenda on that date, moved if the item is planned again."""
    rule = RULES_BY_CODE.get(code)
    if rule is None or not applies(rule, patient.sex):
        raise NotFound("agenda_prevention_unknown")
    if status not in STATUSES:
        raise DomainError("invalid_request", errors=[{"field": "status", "message": "to_plan, done ou not_done"}])
    if status == "done":
        done_on = done_on or today
        if done_on > today:
            raise DomainError("agenda_prevention_done_in_future")
    if appointment_id is not None and session.scalar(
            select(Appointment.id).where(Appointment.id == appointment_id,
                                         Appointment.patient_id == patient.id)) is None:
        raise NotFound("agenda_appointment_not_found")
    row = session.scalar(select(PreventionMark).where(PreventionMark.patient_id == patient.id,
                                                      PreventionMark.item_code == code))
    if row is None:
        row = PreventionMark(patient_id=patient.id, item_code=code, status=status)
        session.add(row)
    row.status = status
    if status == "done":
        row.done_on, row.planned_on = done_on, None
    elif status == "to_plan":
        row.planned_on = planned_on
        if appointment_id is not None:
            row.appointment_id = appointment_id
    else:
        row.planned_on = None
    row.updated_at = now
    session.flush()
    if status == "to_plan" and planned_on is not None and add_to_agenda is not None and appointment_id is None:
        _plan_in_agenda(session, add_to_agenda, patient, row, rule.label(lang), planned_on, now)
    return row


def _plan_in_agenda(session: Session, settings: AgendaSettings, patient: Patient, row: PreventionMark, label: str,
                    day: dt.date, now: dt.datetime) -> None:
    start, end = local_day_bounds(day, settings.default_tz)
    entry = session.get(Appointment, row.appointment_id) if row.appointment_id else None
    if entry is not None and entry.kind == "personal" and entry.status == "booked":
        update_entry(session, settings, entry, {"starts_at": start, "ends_at": end, "all_day": True}, now=now)
    else:
        entry = add_entry(session, settings, patient, EntryInput(title=label, starts_at=start, ends_at=end,
                                                                 all_day=True, reminders=False), now=now)
        row.appointment_id = entry.id
    session.flush()
