"""The QR code of the authenticator set-up (mobile/qr.py): the image drawn holds exactly the modules of the
otpauth:// link, black on white with its quiet zone, so any authenticator's camera reads the link."""
from __future__ import annotations

import io


def test_the_image_holds_the_links_modules():
    import qrcode
    from PIL import Image
    from qrcode.constants import ERROR_CORRECT_M

    from mobile.qr import qr_png

    uri = "otpauth://totp/Carnet:Camille%20MARTIN?secret=JBSWY3DPEHPK3PXP&issuer=Carnet"
    image = Image.open(io.BytesIO(qr_png(uri, box_size=8, border=4))).convert("L")
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=8, border=4)
    code.add_data(uri)
    code.make(fit=True)
    matrix = code.get_matrix()  # with the quiet zone
    assert image.size == (len(matrix) * 8, len(matrix) * 8)
    drawn = [[image.getpixel((x * 8 + 4, y * 8 + 4)) < 128 for x in range(len(matrix))] for y in range(len(matrix))]
    assert drawn == matrix
    assert not any(drawn[0]) and not any(row[0] for row in drawn)  # the white quiet zone
