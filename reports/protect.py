"""Password-protected workbooks for a phone: the XLSX encrypted as Excel does it (ECMA-376 agile encryption,
AES-256) by msoffcrypto-tool — a maintained library, no home-made crypto. Excel, LibreOffice and WPS open it
with the password.

The password is random, shown once in the chat and stored nowhere: the person shares it by another route
(a call, a message on another app), so a forwarded file alone does not open.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# No 0/O, 1/l/I: read aloud or copied from a phone screen without mistakes.
ALPHABET = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY2346789"
PASSWORD_LENGTH = 12  # ~67 bits


def new_password(length: int = PASSWORD_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def protect_workbook(src: Path, dst: Path, *, password: str) -> Path:
    """Encrypt ``src`` (an .xlsx) into ``dst``; ``dst`` appears only when complete."""
    import msoffcrypto.format.ooxml

    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.part")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            msoffcrypto.format.ooxml.OOXMLFile(fin).encrypt(password, fout)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst
