"""Operators' `carnet catalog` commands: import from JSON or YAML (all or nothing, clear errors), seed,
list, suspend / de-reference / reinstate, reports, secret rotation."""
from __future__ import annotations

import json

from sqlalchemy import func, select

from backend.catalog.models import CatalogService, ServiceStatus
from backend.security import verify_password
from tests.catalog_support import service_spec


def run(runner, *args):
    return runner.invoke(args=["catalog", *args])


def write(tmp_path, name: str, content) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def test_import_json_then_yaml_update(runner, db, tmp_path):
    path = write(tmp_path, "catalogue.json", {"services": [service_spec("pas-a-pas", "Pas à Pas"),
                                                             service_spec("cabinet", "Cabinet", confidential=True)]})
    result = run(runner, "import", path)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["created"] == ["pas-a-pas", "cabinet"] and list(out["client_secrets"]) == ["cabinet"]
    stored = db.scalar(select(CatalogService).where(CatalogService.slug == "cabinet"))
    assert stored.client_secret_hash != out["client_secrets"]["cabinet"]
    assert verify_password(stored.client_secret_hash, out["client_secrets"]["cabinet"])
    yaml_text = """
services:
  - slug: pas-a-pas
    name: Pas à Pas Plus
    publisher: Mouvement Santé
    summary: "Marche : objectifs quotidiens."
    description: Objectifs de marche.
    themes: [physical_activity]
    regions: [national]
    privacy_policy_url: https://pas-a-pas.example.fr/confidentialite
    referenced_at: 2024-02-01
    permissions: [measures.steps.write]
    client: {client_id: pas-a-pas-client, redirect_uris: ["fr.example.pasapas:/cb"]}
"""
    result = run(runner, "import", write(tmp_path, "update.yaml", yaml_text))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["updated"] == ["pas-a-pas"]
    db.expire_all()
    assert db.scalar(select(CatalogService.name).where(CatalogService.slug == "pas-a-pas")) == "Pas à Pas Plus"


def test_a_bad_file_imports_nothing_and_says_why(runner, db, tmp_path):
    good = service_spec("bon-service", "Bon Service")
    bad = {**service_spec("mauvais", "Mauvais"), "themes": ["astrologie"], "privacy_policy_url": "http://x.fr",
           "permissions": ["documents.TOUT.read"]}
    result = run(runner, "import", write(tmp_path, "bad.json", [good, bad]))
    assert result.exit_code == 1
    assert "nothing was changed" in result.output
    assert "unknown theme 'astrologie'" in result.output
    assert "'privacy_policy_url' must be an https:// address" in result.output
    assert "unknown permission 'documents.TOUT.read'" in result.output
    assert db.scalar(select(func.count()).select_from(CatalogService)) == 0
    for name, content, expected in (
            ("broken.json", '{"services": [', "invalid JSON at line 1"),
            ("broken.yaml", "services:\n  - slug: a\n   name: b", "invalid YAML"),
            ("empty.yaml", "", "must hold a list of services"),
            ("twice.json", json.dumps([good, good]), "slug 'bon-service' appears twice")):
        result = run(runner, "import", write(tmp_path, name, content))
        assert result.exit_code == 1 and expected in result.output, (name, result.output)
    result = run(runner, "import", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 1 and "cannot read" in result.output
    assert db.scalar(select(func.count()).select_from(CatalogService)) == 0


def test_a_client_id_belongs_to_one_service(runner, db, tmp_path):
    assert run(runner, "import", write(tmp_path, "a.json", [service_spec("alpha", "Alpha")])).exit_code == 0
    thief = {**service_spec("beta", "Beta"), "client": {"client_id": "alpha-client",
                                                        "redirect_uris": ["https://beta.example.fr/cb"]}}
    result = run(runner, "import", write(tmp_path, "b.json", [service_spec("gamma", "Gamma"), thief]))
    assert result.exit_code == 1 and "already belongs to service 'alpha'" in result.output
    assert db.scalar(select(func.count()).select_from(CatalogService)) == 1


def test_seed_list_and_status_commands(runner, db):
    result = run(runner, "seed")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["created"]) >= 20
    services = json.loads(run(runner, "list").output)["services"]
    assert len(services) >= 20 and {s["status"] for s in services} >= {"online", "offline", "suspended"}
    for command, status in (("suspend", "suspended"), ("reinstate", "online"), ("offline", "offline"),
                            ("dereference", "dereferenced")):
        result = run(runner, command, "rappel-vaccins")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["status"] == status
        db.expire_all()
        assert db.scalar(select(CatalogService.status).where(CatalogService.slug == "rappel-vaccins")) \
            == ServiceStatus(status)
    result = run(runner, "suspend", "nobody")
    assert result.exit_code == 1 and "n'est pas référencé" in result.output


def test_reports_and_secret_rotation(runner, db, tmp_path):
    run(runner, "import", write(tmp_path, "c.json", [service_spec("cabinet", "Cabinet", confidential=True)]))
    result = run(runner, "rotate-secret", "cabinet")
    assert result.exit_code == 0
    secret = json.loads(result.output)["client_secret"]
    db.expire_all()
    stored = db.scalar(select(CatalogService.client_secret_hash).where(CatalogService.slug == "cabinet"))
    assert verify_password(stored, secret)
    assert json.loads(run(runner, "reports").output) == {"reports": []}
    assert run(runner, "reports", "--service", "nobody").exit_code == 1


def test_an_unquoted_comma_that_cuts_a_permission_text_is_refused(runner, db, tmp_path):
    """YAML's flow mapping ends a text at its first comma: a catalogue would show half a sentence."""
    content = ("services:\n"
               "  - slug: cut\n    name: Coupé\n    publisher: Éditeur\n    summary: Un service.\n"
               "    description: Un service de test.\n    themes: [prevention]\n    regions: [national]\n"
               "    privacy_policy_url: https://cut.example.fr/vie-privee\n    referenced_at: 2024-01-01\n"
               "    permissions:\n"
               "      - {scope: documents.BIOLOGIE.read, purpose: Vos résultats (HbA1c, bilan lipidique).}\n"
               "    client: {client_id: cut, redirect_uris: [\"fr.example.cut:/cb\"]}\n")
    result = run(runner, "import", write(tmp_path, "cut.yaml", content))
    assert result.exit_code == 1, result.output
    assert "permissions[0]: unexpected 'bilan lipidique).'" in result.output and "quotes" in result.output
    assert db.scalar(select(func.count()).select_from(CatalogService)) == 0
    # the shipped catalogue keeps its sentences whole
    assert run(runner, "seed").exit_code == 0
    from backend.catalog.models import ServicePermission

    purposes = set(db.scalars(select(ServicePermission.purpose)))
    assert "Retrouver vos résultats de laboratoire (HbA1c, bilan lipidique)." in purposes
    assert "Enregistrer votre tension, surveillée pendant la grossesse." in purposes


def test_the_catalogue_file_schema_names_each_fault_of_each_service():
    """The file's schema (backend/catalog/catalogue_file.py) collects every fault, each with its service."""
    import datetime as dt

    import pytest

    from backend.catalog.catalogue_file import CatalogFileError, parse_catalogue

    good = service_spec("bon-service", "Bon Service")
    [spec] = parse_catalogue({"services": [{**good, "name": "  Bon Service  ", "website_url": " ",
                                            "regions": ["national", 11, "11"]}]})
    assert (spec.name, spec.website_url, spec.regions, spec.referenced_at) == (
        "Bon Service", None, ["national", "11"], dt.date(2024, 1, 15))
    assert spec.permissions == [("measures.weight.read", "Pourquoi measures.weight.read")]
    assert (spec.client_id, spec.confidential, spec.status) == ("bon-service-client", False, None)
    bad = {**service_spec("mauvais", "Mauvais"), "name": " ", "colour": "bleu", "status": "perdu",
           "referenced_at": "15/01/2024", "website_url": 42, "summary": "x" * 301,
           "permissions": ["measures.weight.read", "measures.weight.read"],
           "client": {"client_id": "court", "redirect_uris": ["http://example.fr/cb"], "confidential": "oui"}}
    with pytest.raises(CatalogFileError) as refused:
        parse_catalogue([bad, "pas un service", {"slug": "Majuscules"}])
    problems = refused.value.problems
    expected = [
        "services[0] (mauvais): unknown field 'colour'",
        "services[0] (mauvais): 'name' is required",
        "services[0] (mauvais): 'summary' is longer than 300 characters",
        "services[0] (mauvais): 'status' must be one of online, offline, suspended, dereferenced",
        "services[0] (mauvais): 'website_url' must be text",
        "services[0] (mauvais): 'referenced_at' must be a date (YYYY-MM-DD)",
        "services[0] (mauvais): permission 'measures.weight.read' listed twice",
        "services[0] (mauvais): 'client.client_id' must be 8–64 letters, digits, dots, dashes or underscores",
        "services[0] (mauvais): 'client.redirect_uris' must list https://, loopback http:// or native-app "
        "(reverse domain) addresses, without fragment",
        "services[0] (mauvais): 'client.confidential' must be true or false",
        "services[1]: each service must be a mapping",
        "services[2] (Majuscules): 'slug' must be 3–64 lowercase letters, digits or dashes",
        "services[2] (Majuscules): 'publisher' is required",
    ]
    assert sorted(set(expected) - set(problems)) == []
    assert len(problems) == len(set(problems))
