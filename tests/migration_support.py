"""Shared helpers of the migration tests: the fixture corpus laid out as a legacy source."""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from tests.helpers import SHARED

EXT = SHARED / "fixtures" / "external"

# Holders of the fixture documents (valid NIRs only; documents with an invalid NIR belong to nobody)
NIR_PAT_TROIS = "279035121518989"      # INS-NIR test .10 of most ANS 3.0 examples
NIR_277 = "277076322082910"            # INS-NIR .8 of eDISP, CR-BIO 2.41, PPS, DOC_NON_STRUCTURE R1
NIR_PAT_SIX = "162018885045327"        # the DRIMbox XDM (KOS + signature)
NIR_SAUVEUR = "275039210000103"        # the 2016 XDM packages, identified by INS-C only (listed in settings)
INSC_SAUVEUR = "0218805328320789819507"
NIR_VSM = "280037510620131"            # VSM v1.4 (INS-C + INS-NIR .8)
NIR_FLUDR = "240119205062803"          # DLU_FLUDR carries this NIR without its key (13 digits)

BIRTH = {NIR_PAT_TROIS: "1979-03-05", NIR_277: "1977-07-10", NIR_PAT_SIX: "1962-01-24",
         NIR_SAUVEUR: "1975-03-01", NIR_VSM: "1980-03-12", NIR_FLUDR: "1940-11-19"}
SEX = {NIR_PAT_TROIS: "F", NIR_277: "F", NIR_PAT_SIX: "M", NIR_SAUVEUR: "F", NIR_VSM: "F", NIR_FLUDR: "F"}

V3 = EXT / "ans-testcontenucda-3.0"
V241 = EXT / "ans-testcontenucda-2.41"
V222 = EXT / "ans-testcontenucda-2.22-legacy"

# dossier → files copied into it (source path, name inside the dossier)
LAYOUT: dict[str, list[tuple[Path, str]]] = {
    NIR_PAT_TROIS: [(p, p.name) for p in sorted(V3.glob("*.xml")) if not p.name.startswith("eDISP")] + [
        (EXT / "ans-drimbox" / "cda" / "IMG_CR_IMG_2023.11_CDA-R2-Niveau-1.xml", "drimbox/IMG_CR_IMG_2023.11.xml"),
        (EXT / "hl7-c-cda-examples" / "Unstructured" / "CDA reference PDF" / "Unstructured_Document_reference.xml",
         "us/Unstructured_Document_reference.xml"),
        (EXT / "hl7-c-cda-examples" / "Unstructured" / "CDA reference PDF" / "UD_sample.pdf", "us/UD_sample.pdf"),
        (EXT / "hl7-c-cda-examples" / "Unstructured" / "CDA with Embedded Text plain"
         / "CDA_Embedded_Text_Plain_Surgical_Consult.xml", "us/Surgical_Consult.xml"),
        (EXT / "hl7-cda-sample" / "cda-original.xml", "us/cda-original.xml"),
        (EXT / "directproject-xdm" / "samplexdm.zip", "samplexdm.zip"),
    ],
    NIR_277: [(p, p.name) for p in sorted(V241.glob("*.xml"))] + [(V3 / "eDISP-MED_2024.01.xml", "eDISP-MED_2024.01.xml")],
    NIR_PAT_SIX: [(EXT / "ans-drimbox" / "xdm" / "KA202401", "KA202401")],
    NIR_SAUVEUR: [(V222 / "xdm" / "XDM_2-CR-BIO", "XDM_2-CR-BIO"), (V222 / "xdm" / "XDM_VSM", "XDM_VSM")],
    NIR_VSM: [(V222 / "VSM_v1.4.xml", "VSM_v1.4.xml"), (V222 / "LDL-SES_v2.3.xml", "LDL-SES_v2.3.xml"),
              (V222 / "CR_BIO_Chikungunya_v2.0.xml", "CR_BIO_Chikungunya_v2.0.xml"),
              (V222 / "DOC_NON_STRUCTURE.xml", "DOC_NON_STRUCTURE.xml"),
              (V222 / "CNAM-HR_concertation_sans-info_V0.8.xml", "CNAM-HR_v0.8.xml")],
    NIR_FLUDR: [(V222 / "DLU_FLUDR_v1.2.xml", "DLU_FLUDR_v1.2.xml")],
}
SETTINGS = {
    NIR_SAUVEUR: '{"version": 1, "identifiers": [{"oid": "1.2.250.1.213.1.4.2", "value": "%s"}]}' % INSC_SAUVEUR,
    NIR_VSM: '{"version": 1, "identifiers": [{"oid": "1.2.250.1.213.1.4.2", "value": "1234567890112345678901"}]}',
}

EXPECTED = {  # source → (status, reason) for every item of the corpus; the report must say exactly this
    (NIR_PAT_TROIS, "CSE-CS24_2025.01.xml"): ("quarantined", "identity_other_person"),   # NIR with a wrong key
    (NIR_PAT_TROIS, "CSE-CS8_2024.01.xml"): ("quarantined", "identity_other_person"),
    (NIR_PAT_TROIS, "CSE-MDE_2023.01.xml"): ("quarantined", "identity_other_person"),
    (NIR_PAT_TROIS, "OBP-SNE_2024.01.xml"): ("quarantined", "identity_other_person"),
    (NIR_PAT_TROIS, "SDM-MR_2024.01_nouveau-ne.xml"): ("quarantined", "identity_other_person"),
    (NIR_PAT_TROIS, "us/Surgical_Consult.xml"): ("quarantined", "identity_missing"),
    (NIR_PAT_TROIS, "us/Unstructured_Document_reference.xml"): ("quarantined", "identity_missing"),
    (NIR_PAT_TROIS, "us/cda-original.xml"): ("quarantined", "identity_missing"),
    (NIR_PAT_TROIS, "samplexdm.zip!/samplexdm/IHE_XDM/SUBSET01/Document01.xml"): ("quarantined", "identity_missing"),
    (NIR_PAT_SIX, "KA202401/IHE_XDM/SS000001/SIGN_1.XML"): ("quarantined", "technical_signature"),
    (NIR_PAT_SIX, "KA202401/IHE_XDM/SS000001/CR.TXT"): ("quarantined", "xdm_unreferenced_file"),
    (NIR_SAUVEUR, "XDM_2-CR-BIO/CR d'examens biologiques - Labo des Charmes.html"): ("quarantined", "unsupported_file"),
    (NIR_SAUVEUR, "XDM_2-CR-BIO/Compte rendu de biologie médicale.html"): ("quarantined", "unsupported_file"),
    (NIR_SAUVEUR, "XDM_VSM/Synthèse médicale.html"): ("quarantined", "unsupported_file"),
    (NIR_VSM, "CNAM-HR_v0.8.xml"): ("quarantined", "identity_other_person"),       # another NIR beside the INS-C
    (NIR_VSM, "LDL-SES_v2.3.xml"): ("quarantined", "identity_other_person"),
    (NIR_VSM, "CR_BIO_Chikungunya_v2.0.xml"): ("quarantined", "identity_unlisted"),  # an INS-C not listed
    (NIR_VSM, "DOC_NON_STRUCTURE.xml"): ("quarantined", "identity_unlisted"),
}


def build_legacy_dir(root: Path, only: list[str] | None = None) -> Path:
    legacy = root / "legacy"
    for nir, files in LAYOUT.items():
        if only is not None and nir not in only:
            continue
        dossier = legacy / nir
        dossier.mkdir(parents=True, exist_ok=True)
        for src, name in files:
            target = dossier / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target)
            else:
                shutil.copyfile(src, target)
        if nir in SETTINGS:
            (dossier / "settings.json").write_text(SETTINGS[nir], encoding="utf-8")
    # copies from a read-only tree stay read-only; the tests may add files
    for p in legacy.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return legacy


def birth(nir: str) -> str:
    return BIRTH[nir]


def today() -> dt.date:
    return dt.date.today()
