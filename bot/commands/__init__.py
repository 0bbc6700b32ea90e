"""Every `fieldbot` subcommand, one module each (`bot/cli.py` gathers them).

An operator mistake raises ``CliError``: printed as one Vietnamese line, exit status 2, never a traceback.
"""

from __future__ import annotations

import errno
import sys
import tempfile
from pathlib import Path


class CliError(Exception):
    """An operator mistake: printed as one line, exit status 2."""


_ERRNO_VI = {
    errno.EACCES: "không có quyền",
    errno.EPERM: "không được phép",
    errno.ENOENT: "không tồn tại",
    errno.ENOTDIR: "một phần của đường dẫn là tệp, không phải thư mục",
    errno.EISDIR: "là một thư mục",
    errno.EEXIST: "đã có",
    errno.EROFS: "ổ đĩa chỉ cho đọc",
    errno.ENOSPC: "hết chỗ trên ổ đĩa",
    errno.ENAMETOOLONG: "tên quá dài",
}


def os_reason(exc: OSError) -> str:
    """Why an OSError happened, Vietnamese first: 'không có quyền (Permission denied)'."""
    reason = _ERRNO_VI.get(exc.errno or 0)
    return f"{reason} ({exc.strerror})" if reason and exc.strerror else (exc.strerror or str(exc))


def os_error_text(exc: OSError) -> str:
    """An OSError as the operator should read it: on which path, and why."""
    if exc.errno == errno.EEXIST and exc.filename and Path(exc.filename).is_file():
        return f"{exc.filename} là một tệp, không phải thư mục"  # mkdir of a folder whose name a file has
    return f"{exc.filename}: {os_reason(exc)}" if exc.filename else os_reason(exc)


def prepare_output(path: Path, *, force: bool, option: str = "--out") -> None:
    """Check, before any work, that ``path`` can be written: refuse a folder, an existing file without
    ``--force``, a parent that is a file, or a folder that cannot be written; create a missing folder and say
    so. Raises ``CliError``."""
    path = Path(path)
    if path.is_dir():
        raise CliError(f"{option} {path} là một thư mục: hãy ghi cả tên tệp.")
    if (path.exists() or path.is_symlink()) and not force:
        raise CliError(f"Tệp {path} đã có: thêm --force để ghi đè, hoặc chọn tên khác.")
    folder = path.parent
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise CliError(f"Không ghi được {path}: {existing} là một tệp, không phải thư mục.")
    if not folder.exists():
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise CliError(f"Không tạo được thư mục {folder}: {os_reason(exc)}") from None
        print(f"Đã tạo thư mục {folder}.")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass  # the only sure test of "can I write here" (root, read-only mounts, ACLs)
    except OSError as exc:
        raise CliError(f"Không ghi được vào thư mục {folder}: {os_reason(exc)}") from None


def confirm(question: str, *, yes_flag: str = "--yes") -> bool:
    """Ask on the terminal; without one (cron, a pipe, CI) refuse with a line saying to pass ``--yes``."""
    stdin = sys.stdin
    try:
        interactive = stdin is not None and not stdin.closed and stdin.isatty()
    except (ValueError, OSError):
        interactive = False
    if not interactive:
        raise CliError(f"Không có cửa sổ dòng lệnh để xác nhận: thêm {yes_flag} nếu chắc chắn muốn tiếp tục.")
    try:
        answer = input(question)
    except EOFError:
        raise CliError(f"Không nhận được câu trả lời: thêm {yes_flag} nếu chắc chắn muốn tiếp tục.") from None
    return answer.strip().lower() in ("dong y", "đồng ý")
