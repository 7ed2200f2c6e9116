"""``carnet insurer``: the Assurance Maladie's feed as a system actor (docs/insurer-feed.md).

``create`` makes the insurer and prints its token once; ``token`` issues a new one (``--revoke-others``);
``feed`` simulates a run of the feed: for each patient, the CNAM-HR history of the last 24 months (from a
file, or simulated) deposited over the professional API's ITI-65 with the insurer's token — through HTTP to
``--url``, or to this very app in process (the same route, the same checks). Each command prints one JSON
object; a refused deposit prints the server's OperationOutcome and exits 1.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import sys
from typing import Any

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.errors import DomainError


def _print(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group("insurer")
def insurer_group() -> None:
    """The health insurer's feed (reimbursement history)."""


@insurer_group.command("create")
@click.option("--code", default="cnam", show_default=True, help="a short identifier of the insurer")
@click.option("--name", default="Assurance Maladie", show_default=True, help="the name patients read")
@click.option("--organisation-id", default=None, help="its identifier as the documents give it")
@with_appcontext
def insurer_create(code: str, name: str, organisation_id: str | None) -> None:
    """Create the insurer and print its bearer token for the professional API (shown once)."""
    from backend.db import get_session
    from backend.insurer import credentials as service

    session = get_session()
    try:
        insurer, token = service.create_insurer(session, code=code, name=name,
                                                organisation_id=organisation_id or service.DEFAULT_ORGANISATION)
        session.commit()
    except DomainError as exc:
        session.rollback()
        _fail(exc.detail("fr"))
        return
    _print({"insurer_id": insurer.id, "code": insurer.code, "name": insurer.name, "token": token})


@insurer_group.command("token")
@click.option("--code", default="cnam", show_default=True)
@click.option("--revoke-others", is_flag=True, help="revoke the insurer's other tokens (rotation)")
@with_appcontext
def insurer_token(code: str, revoke_others: bool) -> None:
    """Issue a new token for the insurer."""
    from backend.db import get_session
    from backend.insurer import credentials as service

    session = get_session()
    insurer = service.by_code(session, code)
    if insurer is None:
        _fail(DomainError("insurer_unknown", 404, code=code).detail("fr"))
        return
    revoked = service.revoke_tokens(session, insurer) if revoke_others else 0
    token = service.issue_token(session, insurer)
    session.commit()
    _print({"insurer_id": insurer.id, "code": insurer.code, "token": token, "revoked": revoked})


def _period(value: str | None) -> str:
    if value is None:
        today = dt.date.today()
        last = today.replace(day=1) - dt.timedelta(days=1)   # the month just ended
        return f"{last.year:04d}-{last.month:02d}"
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise click.BadParameter("YYYY-MM attendu", param_hint="--period")
    return value


def _post(url: str | None, token: str, bundle: dict[str, Any]) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json",
               "Accept": "application/fhir+json"}
    if url:
        import requests

        response = requests.post(url.rstrip("/") + "/fhir/R4", data=json.dumps(bundle), headers=headers, timeout=60)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text[:500]
    answer = current_app.test_client().post("/fhir/R4", data=json.dumps(bundle), headers=headers)
    return answer.status_code, answer.get_json(force=True, silent=True)


@insurer_group.command("feed")
@click.option("--token", envvar="CARNET_INSURER_TOKEN", required=True,
              help="the insurer's token (carnet insurer create), or CARNET_INSURER_TOKEN")
@click.option("--nir", "nirs", multiple=True, required=True, help="a patient's INS (NIR); repeat for several")
@click.option("--test-identity", is_flag=True, help="INS of test identities (OID …4.10)")
@click.option("--period", default=None, help="the month the history ends (YYYY-MM; default: last month)")
@click.option("--previous-period", default=None,
              help="the month of the history this one replaces (relatesTo replaces), if one was sent")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="a CNAM-HR document to send as is (else a simulated history of the last 24 months)")
@click.option("--url", default=None, help="the server (https://…); default: this app, in process")
@with_appcontext
def insurer_feed(token: str, nirs: tuple[str, ...], test_identity: bool, period: str | None,
                 previous_period: str | None, path: str | None, url: str | None) -> None:
    """Simulate one run of the feed: deposit each patient's reimbursement history over ITI-65."""
    from backend.identity import OID_INS_NIR, OID_INS_NIR_TEST
    from backend.insurer import feed

    month = _period(period)
    previous = _period(previous_period) if previous_period else None
    oid = OID_INS_NIR_TEST if test_identity else OID_INS_NIR
    given = Path(path).read_bytes() if path else None
    results, failed = [], False
    for nir in nirs:
        nir = re.sub(r"\s", "", nir).upper()
        content = given or feed.cnam_hr(nir, month, feed.simulated_episodes(nir, month), ins_oid=oid)
        uid = feed.unique_id(nir, month)   # one history per patient and month: a re-run is a retry
        bundle = feed.provide_bundle(nir, content, uid=uid, service_date=feed.period_end(month), ins_oid=oid,
                                     replaces=feed.unique_id(nir, previous) if previous else None)
        status, body = _post(url, token, bundle)
        ok = status in (200, 201)
        failed = failed or not ok
        location = None
        if ok and isinstance(body, dict):
            location = next((e.get("response", {}).get("location") for e in body.get("entry", [])
                             if "DocumentReference/" in str(e.get("response", {}).get("location"))), None)
        results.append({"patient": f"…{nir[-4:]}", "status": status, "document": location,
                        **({} if ok else {"outcome": body})})
    _print({"period": month, "sent": len(results), "stored": sum(r["status"] in (200, 201) for r in results),
            "results": results})
    if failed:
        sys.exit(1)
