"""QR images: redemption codes (PNG, SVG) and printable household cards (PNG with the number beneath)."""
import io

import qrcode
from qrcode.image.svg import SvgPathImage


def _qr(data: str) -> qrcode.QRCode:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=10, border=4)
    qr.add_data(data)  # digits only: numeric mode, the symbol holds exactly them
    qr.make(fit=True)
    return qr


def qr_png(data: str) -> bytes:
    buffer = io.BytesIO()
    _qr(data).make_image().save(buffer)
    return buffer.getvalue()


def qr_svg(data: str) -> bytes:
    return _qr(data).make_image(image_factory=SvgPathImage).to_string(encoding="unicode").encode()


def labelled_png(data: str, label: str) -> bytes:
    """A QR code with a line of text beneath it (a printable card)."""
    from PIL import Image, ImageDraw, ImageFont

    code = _qr(data).make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    card = Image.new("RGB", (code.width, code.height + 60), "white")
    card.paste(code, (0, 0))
    draw = ImageDraw.Draw(card)
    font = ImageFont.load_default(size=28)
    width = draw.textlength(label, font=font)
    draw.text(((card.width - width) / 2, code.height + 10), label, fill="black", font=font)
    out = io.BytesIO()
    card.save(out, format="PNG")
    return out.getvalue()
