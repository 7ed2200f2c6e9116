"""The viewer on real documents (ANS CI-SIS CDA, HL7 C-CDA, PDFs from the fixtures) and on hostile ones:
PDF pages as PNG, CDA level 3 narrative as plain text, CDA level 1 unwrapped, images as they are; XML
with entities/DTDs refused, markup never passed through, outputs bounded."""
from __future__ import annotations

import hashlib
import io
import re
import time

import pytest
from PIL import Image

from backend.records.documents import viewer
from tests.helpers import assert_problem
from tests.documents_support import BIO_L1, CDA3, EXTERNAL, IMG_PDF, LDL_SES, deposit, make_pro, read

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
C_CDA = EXTERNAL / "hl7-c-cda-examples"
DRIMBOX_CDA = EXTERNAL / "ans-drimbox" / "cda" / "IMG_CR_IMG_2023.11_CDA-R2-Niveau-1.xml"
UD_SAMPLE = C_CDA / "Unstructured" / "CDA reference PDF" / "UD_sample.pdf"
TEXT_CDA = C_CDA / "Unstructured" / "CDA with Embedded Text plain" / "CDA_Embedded_Text_Plain_Surgical_Consult.xml"
REFERENCE_CDA = C_CDA / "Unstructured" / "CDA reference PDF" / "Unstructured_Document_reference.xml"


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def words(narrative: viewer.Narrative) -> str:
    return narrative.plain_text()


# --- PDFs -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, pages", [(IMG_PDF, 1), (UD_SAMPLE, 3)])
def test_fixture_pdfs_have_pages_rendered_as_png(path, pages):
    data = read(path)
    view = viewer.inspect(data)
    assert (view.kind, view.source, view.page_count, view.page_type) == ("pages", "pdf", pages, "image/png")
    image, mime = viewer.render_page(data, pages, width=800)
    assert mime == "image/png" and png_size(image)[0] == 800
    with pytest.raises(viewer.PageNotFound):
        viewer.render_page(data, pages + 1)
    with pytest.raises(viewer.PageNotFound):
        viewer.render_page(data, 0)


def test_page_size_is_capped():
    data = read(IMG_PDF)
    image, _ = viewer.render_page(data, 1, width=50_000)
    width, height = png_size(image)
    assert width <= viewer.MAX_WIDTH and width * height <= viewer.MAX_PIXELS * 1.01


def test_cda_level1_carries_the_expected_pdf_byte_for_byte():
    """The DRIMbox CDA level 1 and the PDF published beside it (ground truth)."""
    kind, payload = viewer.cda_embedded(read(DRIMBOX_CDA))
    assert kind == viewer.PDF
    assert hashlib.sha1(payload).hexdigest() == "f89adb0a2bf916f96a736c52f9da828fd9a44521"
    assert payload == read(EXTERNAL / "ans-drimbox" / "cda" / "IMG_CR_IMG_2023.11_Doc_metier.pdf")
    view = viewer.inspect(read(DRIMBOX_CDA))
    assert (view.kind, view.source, view.page_count) == ("pages", "cda1-pdf", 1)
    assert view.title == "CR d’imagerie médicale - Scanner Tête + Cou + Thorax avec injection"


@pytest.mark.parametrize("path, pages", [
    (BIO_L1, 2),
    (CDA3 / "TLM-CR_2022.01.xml", 1),
    (EXTERNAL / "ans-testcontenucda-2.41" / "DOC_NON_STRUCTURE_CDA-R1.xml", 2),
    (EXTERNAL / "ans-testcontenucda-2.22-legacy" / "DOC_NON_STRUCTURE.xml", 1),  # base64 without its padding
    (C_CDA / "Unstructured" / "CDA with Embedded PDF 1" / "Unstructured_Document_embed.xml", 3),
])
def test_cda_level1_pages(path, pages):
    data = read(path)
    assert viewer.page_count(data) == pages
    image, mime = viewer.render_page(data, pages, width=600)
    assert mime == "image/png" and png_size(image)[0] == 600


def test_cda_level1_text_and_external_reference():
    view = viewer.inspect(read(TEXT_CDA))
    assert (view.kind, view.source) == ("narrative", "cda1-text")
    text = words(viewer.narrative(read(TEXT_CDA)))
    assert "SURGICAL CONSULT" in text and "Cervical disc degeneration" in text
    # nonXMLBody pointing at an outside file: never fetched, offered as a download
    view = viewer.inspect(read(REFERENCE_CDA))
    assert (view.kind, view.source) == ("download", "cda1")
    with pytest.raises(viewer.NotViewable):
        viewer.render_page(read(REFERENCE_CDA), 1)


# --- CDA level 3 narrative ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("AVC-SUNV_2022.01.xml", ["Infarctus cérébral", "Score NIHSS", "PLAVIX 75 mg"]),
    ("LDL-SES_2022.01.xml", ["Episode psychotique", "Streptococcus pneumoniae"]),
    ("VAC-NOTE_2023.01.xml", ["VACCIN TETANIQUE PASTEUR", "Deltoïde gauche"]),
    ("BIO-CR-BIO_2021.01_Auto-Presentable.xml", ["Triglycérides", "Cholestérol"]),  # CDA inside an XSLT
    ("CNAM-HR_2021.01.xml", []),
    ("IPS-FR_2024.01.xml", []),
])
def test_cda_level3_narrative_has_the_documents_words(name, expected):
    data = read(CDA3 / name)
    assert viewer.inspect(data).kind == "narrative"
    narrative = viewer.narrative(data)
    text = words(narrative)
    assert narrative.sections and not narrative.truncated
    for word in expected:
        assert word in text
    assert not re.search(r"<[A-Za-z/!?]", text) and "urn:hl7-org:v3" not in text  # no tag, only text


def test_narrative_structure_of_a_real_document():
    narrative = viewer.narrative(read(CDA3 / "AVC-SUNV_2022.01.xml"))
    assert narrative.title == "Fiche de sortie d'unité neuro-vasculaire"
    assert narrative.date == "2018-10-03" and narrative.document_type == "Synthèse d'épisode de soins"
    assert narrative.authors == [{"name": "Jacques BIDEAULT", "organisation": "Clinique du Belvédère"}]
    first = narrative.sections[0]
    assert first["title"] == "interprétation diagnostique de sortie" and first["code"] == "11535-2"
    table = first["blocks"][0]
    assert table["type"] == "table"
    assert table["header"] == [["interprétation diagnostique de sortie", "Raison"]]
    assert table["rows"] == [["Infarctus cérébral", "Athérome extracranien"]]
    # no patient identity travels with the narrative
    assert "279035121518989" not in str(narrative.as_dict())


# --- hostile input ---------------------------------------------------------------------------------

def cda(body: str, *, prolog: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<ClinicalDocument xmlns="urn:hl7-org:v3" '
            f'xmlns:x="http://www.w3.org/1999/xhtml"><title>Compte rendu</title><component><structuredBody>'
            f'<component><section><title>Conclusion</title><text>{body}</text></section></component>'
            f'</structuredBody></component></ClinicalDocument>').encode()


def test_no_markup_or_script_passes_through():
    data = cda('<paragraph>Examen normal<x:script>alert("vol")</x:script>.</paragraph>'
               '<script>document.cookie</script>'
               '<paragraph>Voir <linkHtml href="javascript:alert(1)">le résultat</linkHtml> '
               '&lt;b&gt;gras&lt;/b&gt;<renderMultiMedia referencedObject="IMG1"/></paragraph>'
               '<list listType="ordered"><item>Re\u200bpos\u0085</item><item><content styleCode="Bold">Suivi</content>'
               '</item></list><x:iframe src="https://example.org/"/>')
    narrative = viewer.narrative(data)
    blocks = narrative.sections[0]["blocks"]
    assert blocks[0] == {"type": "paragraph", "text": "Examen normal."}
    assert blocks[1] == {"type": "paragraph", "text": "Voir le résultat <b>gras</b>"}  # escaped text stays text
    assert blocks[2] == {"type": "list", "ordered": True, "caption": None, "items": ["Repos", "Suivi"]}
    dumped = str(narrative.as_dict())
    for banned in ("alert", "cookie", "javascript", "iframe", "example.org", "IMG1", "\u200b", "\u0085"):
        assert banned not in dumped


@pytest.mark.parametrize("prolog", [
    '<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "http://203.0.113.5/steal">]>',
    '<!DOCTYPE ClinicalDocument [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    '<!ENTITY xxe "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>',
])
def test_entities_and_dtds_are_refused(prolog):
    data = cda("<paragraph>&xxe;</paragraph>", prolog=prolog)
    started = time.process_time()
    assert viewer.inspect(data).kind == "download"
    with pytest.raises(viewer.NotViewable):
        viewer.narrative(data)
    assert time.process_time() - started < 5  # nothing expanded (a CPU bound, not a timing assertion)


def test_narrative_is_bounded():
    paragraph = "<paragraph>" + "Glycémie à jeun normale. " * 400 + "</paragraph>"
    narrative = viewer.narrative(cda(paragraph * 60))
    assert narrative.truncated
    assert sum(len(b["text"]) for b in narrative.sections[0]["blocks"]) <= viewer.MAX_NARRATIVE_CHARS
    deep = "<component><section><title>Niveau</title>" * 40 + "</section></component>" * 40
    nested = viewer.narrative(cda("<paragraph>Début</paragraph>").replace(
        b"</section></component></structuredBody>", f"{deep}</section></component></structuredBody>".encode()))
    assert nested.truncated


def test_not_xml_or_damaged_is_not_viewable():
    with pytest.raises(viewer.NotViewable):
        viewer.narrative(read(IMG_PDF))
    with pytest.raises(viewer.NotViewable):
        viewer.narrative("<ClinicalDocument xmlns='urn:hl7-org:v3'><title>coupé".encode())
    truncated = read(IMG_PDF)[:20000]
    assert not viewer.pdf_is_readable(truncated)
    with pytest.raises(viewer.NotViewable):
        viewer.inspect(truncated)
    with pytest.raises(viewer.NotViewable):
        viewer.render_page(truncated, 1)
    assert not viewer.pdf_is_readable(b"%PDF-1.7\n" + b"0" * 500)


@pytest.mark.parametrize("head, kind", [
    (b"%PDF-1.5\n", viewer.PDF), (PNG_SIGNATURE + b"\0\0\0\rIHDR", viewer.PNG), (b"\xff\xd8\xff\xe0\0\x10JFIF", viewer.JPEG),
    (b"II*\x00\x08\x00\x00\x00", viewer.TIFF), (b"MM\x00*\x00\x00\x00\x08", viewer.TIFF), (b"{\\rtf1\\ansi Bonjour}", viewer.RTF),
    (b"\xef\xbb\xbf<?xml version='1.0'?><a/>", viewer.XML), ("Compte rendu d'échographie\n".encode(), viewer.TEXT),
    ("Réponse en Windows-1252".encode("cp1252"), viewer.TEXT), (b"MZ\x90\x00\x03\x00\x00\x00", None),
    (b"\x00\x01\x02\x03binary", None),
])
def test_sniffing(head, kind):
    assert viewer.sniff(head) == kind


def test_tiff_frames_are_rendered():
    pages = []
    for number in (1, 2, 3):
        png, _ = viewer.render_page(read(UD_SAMPLE), number, width=400)
        pages.append(Image.open(io.BytesIO(png)).convert("RGB"))
    out = io.BytesIO()
    pages[0].save(out, format="TIFF", save_all=True, append_images=pages[1:])
    tiff = out.getvalue()
    view = viewer.inspect(tiff)
    assert (view.kind, view.source, view.page_count) == ("pages", "tiff", 3)
    image, mime = viewer.render_page(tiff, 3, width=200)
    assert mime == "image/png" and png_size(image)[0] == 200


# --- through the API --------------------------------------------------------------------------------

def test_viewer_endpoints_on_real_documents(app, client, camille):
    pro = make_pro(app)
    level1 = deposit(app, camille.id, read(BIO_L1), pro_id=pro, title="Biologie", type_code="11502-2").document.id
    level3 = deposit(app, camille.id, read(LDL_SES), pro_id=pro).document.id
    pdf = deposit(app, camille.id, read(IMG_PDF), pro_id=pro, title="Scanner", type_code="18748-4",
                  mime="application/pdf").document.id
    base = "/api/v1/record/documents"

    detail = client.get(f"{base}/{level1}", headers=camille.headers).get_json()
    assert detail["viewer"] == {"kind": "pages", "source": "cda1-pdf", "page_count": 2, "page_type": "image/png"}
    assert detail["category"] == "BIOLOGIE" and detail["type_label"] == "CR d'examens biologiques"
    pages = client.get(f"{base}/{level1}/pages", headers=camille.headers).get_json()
    assert pages["page_count"] == 2 and [p["url"] for p in pages["pages"]] == \
        [f"{base}/{level1}/pages/1", f"{base}/{level1}/pages/2"]
    r = client.get(f"{base}/{level1}/pages/2", query_string={"width": 500}, headers=camille.headers)
    assert r.status_code == 200 and r.mimetype == "image/png" and png_size(r.data)[0] == 500
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    body = assert_problem(client.get(f"{base}/{level1}/pages/3", headers=camille.headers), 404,
                          "document_page_not_found")
    assert "2 page" in body["detail"]
    assert_problem(client.get(f"{base}/{level1}/pages/1", query_string={"width": 99999},
                              headers=camille.headers), 422)
    assert_problem(client.get(f"{base}/{level1}/narrative", headers=camille.headers), 409, "document_not_viewable")

    narrative = client.get(f"{base}/{level3}/narrative", headers=camille.headers).get_json()
    assert narrative["title"] == "Lettre de liaison à la sortie de l'établissement de santé"
    assert "Streptococcus pneumoniae" in narrative["text"]
    assert any(s["title"] == "Motif de l'hospitalisation" for s in narrative["sections"])
    assert client.get(f"{base}/{level3}", headers=camille.headers).get_json()["viewer"]["kind"] == "narrative"
    assert_problem(client.get(f"{base}/{level3}/pages", headers=camille.headers), 409, "document_not_viewable")

    assert client.get(f"{base}/{pdf}/pages", headers=camille.headers).get_json()["page_count"] == 1
    r = client.get(f"{base}/{pdf}/content", headers=camille.headers)
    assert r.data == read(IMG_PDF) and r.headers["Content-Type"] == "application/pdf"
    assert r.headers["Content-Disposition"] == "attachment; filename=\"Scanner.pdf\"; filename*=UTF-8''Scanner.pdf"


def test_uploaded_image_is_served_as_is(app, client, camille):
    png, _ = viewer.render_page(read(IMG_PDF), 1, width=300)
    r = client.post("/api/v1/record/documents", headers=camille.headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(png), "ordonnance.png"), "category": "ORD_SOIN"})
    assert r.status_code == 201, r.get_json()
    doc = r.get_json()
    assert doc["viewer"] == {"kind": "pages", "source": "image", "page_count": 1, "page_type": "image/png"}
    page = client.get(f"/api/v1/record/documents/{doc['id']}/pages/1", headers=camille.headers)
    assert page.data == png and page.mimetype == "image/png"
