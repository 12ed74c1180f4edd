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
    found: list[str] = []
    # The classic detector first, then the ArUco-based one, which reads codes the classic
    # one misses (uneven module widths after resizing, busy backgrounds).
    for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
        ok, payloads, points, _ = detector.detectAndDecodeMulti(pixels)
        if ok and points is not None:
            found = [str(p) for p in payloads]
        else:
            payload, points, _ = detector.detectAndDecode(pixels)
            found = [str(payload)] if points is not None else []
        if any(found):
            return found
    return found
