"""QR codes drawn by the app (the authenticator set-up): the ``qrcode`` library makes the matrix, Pillow the
image, Kivy shows it as a texture. No network, nothing leaves the device."""

from __future__ import annotations

import io

from kivy.core.image import Image as CoreImage
from kivy.properties import StringProperty
from kivy.uix.image import Image


def qr_png(data: str, box_size: int = 8, border: int = 4) -> bytes:
    """``data`` as a black-on-white QR code, PNG bytes (error correction M: a phone camera at arm's length)."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=border)
    code.add_data(data)
    code.make(fit=True)
    image = code.make_image(fill_color="black", back_color="white").get_image()
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class QrCode(Image):
    """Shows ``data`` as a QR code, crisp at any size (nearest-neighbour scaling)."""

    data = StringProperty("")

    def on_data(self, _instance, data: str) -> None:
        if not data:
            self.texture = None
            return
        texture = CoreImage(io.BytesIO(qr_png(data)), ext="png").texture
        texture.mag_filter = "nearest"
        texture.min_filter = "nearest"
        self.texture = texture
