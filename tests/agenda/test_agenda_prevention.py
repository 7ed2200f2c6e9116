"""Prevention: what is recommended at which age and sex (domain.md), and the patient's statuses."""
import datetime as dt

import pytest
import time_machine

from backend.agenda import prevention
from tests.agenda.support import sign_in, utc
from tests.helpers import assert_problem

TODAY = dt.date(2026, 3, 2)


def codes(birth, sex, today=TODAY, marks=None):
    return {i.rule.code for i in prevention.recommended(birth, sex, today, marks)}


@pytest.mark.parametrize("birth, sex, expected, absent", [
    # a 3-year-old: the first M'T dents check
    (dt.date(2022, 6, 1), "M", {"examen_dentaire_3"}, {"bilan_18_25", "vaccin_dtcap_6"}),
    # 12: dental check at 12, the 11–13 booster, HPV and meningococcus ACWY
    (dt.date(2013, 9, 1), "F", {"examen_dentaire_12", "vaccin_dtcap_11", "vaccin_hpv", "vaccin_meningo_acwy"},
     {"examen_dentaire_9", "depistage_col_cytologie"}),
    # 19: prevention check 18–25, HPV catch-up until 19, no dental check at 19
    (dt.date(2006, 10, 5), "M", {"bilan_18_25", "vaccin_hpv", "vaccin_meningo_acwy"}, {"examen_dentaire_18"}),
    # 26, woman: cervical cytology (25–29) and the dTcaP booster at 25; past the 18–25 check
    (dt.date(1999, 12, 1), "F", {"depistage_col_cytologie", "vaccin_dtcap_25"}, {"bilan_18_25", "depistage_col_hpv"}),
    # 47, woman: check 45–50, HPV test 30–65, dTP booster at 45; not yet breast or colorectal
    (dt.date(1978, 5, 20), "F", {"bilan_45_50", "depistage_col_hpv", "vaccin_dtp_45"},
     {"depistage_sein", "depistage_colorectal"}),
    # 52, woman: breast and colorectal screening, HPV test
    (dt.date(1973, 4, 1), "F", {"depistage_sein", "depistage_colorectal", "depistage_col_hpv", "vaccin_dtp_45"},
     {"bilan_45_50"}),
    # 52, man: colorectal only; never breast or cervical
    (dt.date(1973, 4, 1), "M", {"depistage_colorectal", "vaccin_dtp_45"}, {"depistage_sein", "depistage_col_hpv"}),
    # 65: check 60–65, the 65 booster, flu, Covid-19, pneumococcus, shingles, still screenings
    (dt.date(1960, 11, 30), "M", {"bilan_60_65", "vaccin_dtp_65", "vaccin_grippe", "vaccin_covid",
                                  "vaccin_pneumocoque", "vaccin_zona", "depistage_colorectal"}, {"vaccin_dtp_45"}),
    # 75: check 70–75, booster at 75, no organised screening after 74
    (dt.date(1950, 6, 15), "F", {"bilan_70_75", "vaccin_dtp_75", "vaccin_grippe"},
     {"depistage_sein", "depistage_colorectal", "vaccin_dtp_65"}),
    # 86: the booster every ten years continues
    (dt.date(1940, 1, 1), "M", {"vaccin_dtp_85", "vaccin_grippe"}, {"vaccin_dtp_75", "bilan_70_75"}),
])
def test_recommendations_follow_age_and_sex(birth, sex, expected, absent):
    found = codes(birth, sex)
    assert expected <= found, expected - found
    assert not (absent & found), absent & found


def test_age_ranges_are_inclusive_years():
    birth = dt.date(1976, 3, 3)  # 50 on 3 March 2026
    assert "depistage_colorectal" not in codes(birth, "M", dt.date(2026, 3, 2))
    assert "depistage_colorectal" in codes(birth, "M", dt.date(2026, 3, 3))
    assert "depistage_colorectal" in codes(birth, "M", dt.date(2051, 3, 2))   # the eve of 75
    assert "depistage_colorectal" not in codes(birth, "M", dt.date(2051, 3, 3))
    leap = dt.date(2004, 2, 29)
    assert "bilan_18_25" in codes(leap, "F", dt.date(2022, 3, 1))
    assert prevention.birthday(leap, 18) == dt.date(2022, 3, 1)


def test_a_recurring_screening_is_due_again_after_its_interval():
    class Mark:
        status, done_on, planned_on, appointment_id = "done", dt.date(2024, 2, 1), None, None

    birth = dt.date(1970, 1, 1)
    item = next(i for i in prevention.recommended(birth, "F", TODAY, {"depistage_sein": Mark()})
                if i.rule.code == "depistage_sein")
    assert item.status == "to_plan" and item.done_on == dt.date(2024, 2, 1)
    assert item.next_due_on == dt.date(2026, 2, 1)
    Mark.done_on = dt.date(2025, 6, 1)
    item = next(i for i in prevention.recommended(birth, "F", TODAY, {"depistage_sein": Mark()})
                if i.rule.code == "depistage_sein")
    assert item.status == "done" and item.next_due_on == dt.date(2027, 6, 1)


@time_machine.travel(utc(2026, 3, 2, 9), tick=False)
def test_the_patient_marks_and_plans_items(app, client):
    # Nadia, born 3 May 1972 (53): breast and colorectal screening, HPV test, dTP booster at 45
    patient = sign_in(app, client, 2)
    r = client.get("/api/v1/agenda/prevention", headers=patient.headers)
    assert r.status_code == 200
    body = r.get_json()
    assert body["age"] == 53
    items = {i["code"]: i for i in body["items"]}
    assert items["depistage_sein"]["status"] == "to_plan" and items["depistage_sein"]["status_label"] == "À planifier"
    assert items["depistage_sein"]["label"].startswith("Dépistage organisé du cancer du sein")
    assert items["depistage_sein"]["due_from"] == "2022-05-03" and items["depistage_sein"]["every_months"] == 24

    r = client.put("/api/v1/agenda/prevention/depistage_colorectal", json={"status": "done", "done_on": "2026-02-10"},
                   headers=patient.headers)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "done" and r.get_json()["next_due_on"] == "2028-02-10"
    r = client.put("/api/v1/agenda/prevention/vaccin_dtp_45", json={"status": "not_done"}, headers=patient.headers)
    assert r.get_json()["status_label"] == "Non fait"

    # plan the mammogram on a date, as an all-day entry in the agenda; planning again moves it
    r = client.put("/api/v1/agenda/prevention/depistage_sein",
                   json={"status": "to_plan", "planned_on": "2026-04-15", "add_to_agenda": True}, headers=patient.headers)
    assert r.status_code == 200 and r.get_json()["planned_on"] == "2026-04-15"
    entry_id = r.get_json()["appointment_id"]
    r = client.put("/api/v1/agenda/prevention/depistage_sein",
                   json={"status": "to_plan", "planned_on": "2026-04-22", "add_to_agenda": True}, headers=patient.headers)
    assert r.get_json()["appointment_id"] == entry_id
    agenda = client.get("/api/v1/agenda/appointments", headers=patient.headers).get_json()["items"]
    assert [(a["title"][:40], a["local_date"], a["all_day"]) for a in agenda] == [
        ("Dépistage organisé du cancer du sein (ma", "2026-04-22", True)]

    assert_problem(client.put("/api/v1/agenda/prevention/depistage_sein",
                              json={"status": "done", "done_on": "2026-12-01"}, headers=patient.headers), 422,
                   "agenda_prevention_done_in_future")
    assert_problem(client.put("/api/v1/agenda/prevention/nothing", json={"status": "done"}, headers=patient.headers),
                   404, "agenda_prevention_unknown")
    assert_problem(client.put("/api/v1/agenda/prevention/depistage_sein", json={"status": "maybe"},
                              headers=patient.headers), 422)
    english = client.get("/api/v1/agenda/prevention", headers={**patient.headers, "Accept-Language": "en"}).get_json()
    assert {i["code"]: i["status_label"] for i in english["items"]}["depistage_colorectal"] == "Done"


@time_machine.travel(utc(2026, 3, 2, 9), tick=False)
def test_items_for_the_other_sex_cannot_be_marked(app, client):
    louis = sign_in(app, client, 1)
    assert_problem(client.put("/api/v1/agenda/prevention/depistage_col_hpv", json={"status": "done"},
                              headers=louis.headers), 404, "agenda_prevention_unknown")
