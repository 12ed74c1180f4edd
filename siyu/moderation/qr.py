"""QR codes inside images (二维码), decoded with OpenCV. Pure: bytes in, payloads out."""

from __future__ import annotations

__all__ = ["decode_qr"]

#: images larger than this on their longest side are scaled down first: QR detection
#: cost grows with pixels, and a QR code readable by a phone survives the scaling
MAX_SIDE = 1600


def decode_qr(image: bytes) -> list[str]:
    """The payloads of the QR codes in an image (PNG/JPEG bytes). A QR code that is
    detected but cannot be read answers an empty payload, so it is still flagged.
    Undecodable images answer no payloads."""
    import cv2  # imported here: OpenCV is only needed when an image arrives
    import numpy as np

    pixels = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        return []
    height, width = pixels.shape[:2]
    if max(height, width) > MAX_SIDE:
        scale = MAX_SIDE / max(height, width)
        pixels = cv2.resize(pixels, (int(width * scale), int(height * scale)), interpolation=cv2.INTER_AREA)
    detector = cv2.QRCodeDetector()
    ok, payloads, points, _ = detector.detectAndDecodeMulti(pixels)
    if ok and points is not None:
        return [str(p) for p in payloads]
    payload, points, _ = detector.detectAndDecode(pixels)
    if points is not None:
        return [str(payload)]
    return []
