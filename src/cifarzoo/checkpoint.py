"""Atomic file writing, training checkpoints, and safetensors weights with sha256 checks.

This module holds cifarzoo's one sha256 implementation (:func:`sha256_file`,
:func:`read_sha256_sidecar`, :func:`verify_sha256`), used both here and by the pretrained-weights
loading of :mod:`cifarzoo.models`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import torch
from torch import Tensor

from .pretrained import ChecksumError, PretrainedWeightsError

__all__ = [
    "CHECKPOINT_NAME",
    "ChecksumError",
    "StagedFiles",
    "atomic_dir",
    "atomic_write",
    "json_text",
    "load_checkpoint",
    "load_weights",
    "read_sha256_sidecar",
    "safetensors_bytes",
    "save_checkpoint",
    "save_json",
    "save_weights",
    "sha256_file",
    "sha256_sidecar",
    "verify_sha256",
    "write_sha256_sidecar",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "cifarzoo.checkpoint/1"
_HEX64 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create and open a new hidden file next to ``path``.

    Not ``tempfile.mkstemp``: it creates files with mode 0600, which ``os.replace`` would carry
    over to the final file. ``os.open`` with 0o666 lets the umask apply, as ``open()`` does.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where directories can't be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _staged(path: Path, mode: str) -> Iterator[tuple[IO[Any], Path]]:
    """A temporary file next to ``path``, flushed and fsynced on success and removed on failure;
    the caller moves it into place. Text is UTF-8 whatever the locale."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _with_path(e, path) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _with_path(e: OSError, path: Path) -> OSError:
    """``e`` itself if it names a file, else the same error naming ``path``: a failed write
    (``No space left on device``) names no file by itself."""
    if e.filename is not None or e.errno is None:
        return e
    return type(e)(e.errno, e.strerror or str(e), str(path))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Write to a temporary file in the same folder, fsync, then ``os.replace`` it onto ``path``.

    Readers see either the old file or the complete new one, never a partial write. The new
    file gets the permissions ``open()`` would give it (0o666 less the umask).
    """
    path = Path(path)
    with _staged(path, mode) as (f, tmp):
        yield f
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class StagedFiles:
    """Several files written next to their targets and moved into place by :meth:`commit`.

    Until ``commit`` the targets are untouched; leaving the ``with`` block without committing
    (after an error, say) removes every temporary file::

        with StagedFiles() as staged:
            staged.copy(src, dst, sha256=digest)
            staged.write(meta_path, text)
            staged.commit()
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []

    def __enter__(self) -> StagedFiles:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()

    def write(self, path: str | os.PathLike[str], data: bytes | str) -> None:
        """Stage ``data`` (``str`` is written as UTF-8) for ``path``."""
        path = Path(path)
        with _staged(path, "wb") as (f, tmp):
            self._staged.append((tmp, path))
            f.write(data.encode() if isinstance(data, str) else data)

    def copy(
        self, src: str | os.PathLike[str], path: str | os.PathLike[str], sha256: str | None = None
    ) -> str:
        """Stage a copy of ``src`` for ``path``; returns its sha256. The digest is taken of the
        bytes written, so a copy that differs from ``sha256`` is refused before it is used.

        Raises:
            ChecksumError: the copy's digest is not ``sha256``.
        """
        path = Path(path)
        h = hashlib.sha256()
        with _staged(path, "wb") as (f, tmp), open(src, "rb") as source:
            self._staged.append((tmp, path))
            for chunk in iter(lambda: source.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            raise ChecksumError(
                f"sha256 mismatch copying {src} to {path}: the copy hashes to {digest}, which "
                f"does not match the expected {sha256.lower()}. The source changed or is "
                "truncated; nothing was replaced."
            )
        return digest

    def commit(self) -> None:
        """Move every staged file onto its target (one ``os.replace`` each)."""
        for tmp, path in self._staged:
            os.replace(tmp, path)
        for folder in {path.parent for _, path in self._staged}:
            _fsync_dir(folder)
        self._staged.clear()

    def discard(self) -> None:
        """Remove the staged files that were not committed."""
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged.clear()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a folder in a hidden sibling of ``path`` and rename it onto ``path`` at the end.

    ``path`` must not exist or be an empty folder. On any error the sibling is removed, so a
    failed build leaves nothing behind and can simply be rerun.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} is not empty; pick a new folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.mkdir(0o777)  # not mkdtemp: its 0700 would survive the rename
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, path)  # POSIX rename replaces an empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)


def save_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Atomically write ``obj`` as indented JSON (NaN/inf are written as null)."""
    text = json_text(obj)
    with atomic_write(path, "w") as f:
        f.write(text)


def json_text(obj: Any) -> str:
    """``obj`` as indented JSON text, as :func:`save_json` writes it."""
    return json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n"


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# --------------------------------------------------------------------------------------------
# Training checkpoints
# --------------------------------------------------------------------------------------------


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Atomically ``torch.save`` a training state (adds a format tag)."""
    path = Path(path)
    with atomic_write(path) as f:
        try:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, f)
        except RuntimeError as e:
            # torch's zip writer turns a failed write (a full disk) into "[enforce fail at
            # inline_container.cc] unexpected pos": raise the OSError itself, which names the file
            if isinstance(e.__context__, OSError):
                raise e.__context__ from e
            raise
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: torch.device | str | None = "cpu",
    *,
    mmap: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only`` unpickling).
    ``mmap=True`` maps the tensors' storage instead of reading it (cheap when only the small
    entries, such as the recipe, are needed)."""
    state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a cifarzoo training checkpoint")
    return state


# --------------------------------------------------------------------------------------------
# sha256
# --------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_sidecar(path: str | os.PathLike[str]) -> Path:
    """The ``PATH.sha256`` sidecar of ``path``, where its digest is kept."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def write_sha256_sidecar(path: str | os.PathLike[str], digest: str) -> None:
    """Write ``digest`` into ``path``'s sidecar, atomically, in ``sha256sum`` format
    (``<hex>  <name>``), which ``sha256sum -c`` checks and :func:`read_sha256_sidecar` reads."""
    with atomic_write(sha256_sidecar(path), "w") as f:
        f.write(f"{digest}  {Path(path).name}\n")


def read_sha256_sidecar(path: str | os.PathLike[str]) -> str | None:
    """The digest in ``PATH.sha256`` (``sha256sum`` format, ``<hex>  <name>``, as written by
    :func:`save_weights`), or ``None`` when there is no sidecar.

    Raises:
        ChecksumError: the sidecar does not hold a sha256 digest.
    """
    path = Path(path)
    sidecar = sha256_sidecar(path)
    if not sidecar.is_file():
        return None
    text = sidecar.read_text().strip()
    digest = text.split()[0].lower() if text else ""
    if not _HEX64.fullmatch(digest):
        raise ChecksumError(
            f"{sidecar} does not hold a sha256 digest (expected '<64 hex digits>  {path.name}', "
            f"got {text[:80]!r}). Recreate it with `sha256sum {path.name} > {sidecar.name}` if "
            "you trust the file."
        )
    return digest


def verify_sha256(path: str | os.PathLike[str], expected: str | None = None) -> str:
    """Check ``path`` against its ``PATH.sha256`` sidecar (if any) and ``expected`` (if given);
    return the file's digest. With neither, nothing is checked.

    Raises:
        ChecksumError: a digest does not match, or the sidecar is not a digest.
    """
    path = Path(path)
    actual = sha256_file(path)
    checks = [(read_sha256_sidecar(path), f"its sidecar {sha256_sidecar(path).name}")]
    if expected:
        checks.append((expected.lower(), "the sha256 recorded in the model's pretrained_cfg"))
    for want, where in checks:
        if want is not None and want != actual:
            raise ChecksumError(
                f"sha256 mismatch for {path}: the file hashes to {actual}, which does not match "
                f"{want} from {where}. The file is corrupt, truncated or not the weights it "
                "claims to be; download or copy it again (or delete the cached copy so it is "
                "fetched anew)."
            )
    return actual


# --------------------------------------------------------------------------------------------
# Weights files
# --------------------------------------------------------------------------------------------


def save_weights(
    state_dict: dict[str, Tensor],
    path: str | os.PathLike[str],
    metadata: dict[str, str] | None = None,
) -> str:
    """Atomically write ``state_dict`` as safetensors plus ``PATH.sha256``; returns the digest.

    The sidecar uses the ``sha256sum`` format (``<hex>  <name>``), so ``sha256sum -c`` works.
    """
    path = Path(path)
    data = safetensors_bytes(state_dict, metadata)
    with atomic_write(path) as f:
        f.write(data)
    digest = hashlib.sha256(data).hexdigest()
    write_sha256_sidecar(path, digest)
    return digest


def safetensors_bytes(
    state_dict: dict[str, Tensor], metadata: dict[str, str] | None = None
) -> bytes:
    """``state_dict`` as the bytes of a safetensors file: the same weights give the same bytes
    (and sha256) every time."""
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    return _sorted_metadata(save(tensors, metadata=metadata))


def _sorted_metadata(data: bytes) -> bytes:
    """``data`` (a safetensors file) with the ``__metadata__`` keys of its JSON header sorted.

    safetensors writes them from a Rust ``HashMap``, in an order that changes from call to
    call, so the same weights would give other bytes (and another sha256) every time.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    metadata = header.pop("__metadata__", None)
    if metadata:
        header = {"__metadata__": dict(sorted(metadata.items())), **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the header is padded to 8 bytes, as safetensors pads it
    return len(text).to_bytes(8, "little") + text + data[8 + size :]


def load_weights(
    path: str | os.PathLike[str],
    *,
    verify: bool = True,
    expected_sha256: str | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """Read a safetensors weights file, checking it against ``PATH.sha256`` (if present) and
    ``expected_sha256`` (if given) first, unless ``verify`` is false.

    Raises:
        PretrainedWeightsError: ``path`` is not a ``.safetensors`` file (pickle files such as
            ``.pt`` can run code when read, so cifarzoo never loads them as weights).
        ChecksumError: a digest does not match, or the sidecar is not a digest.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise PretrainedWeightsError(
            f"{path} is not a .safetensors file. cifarzoo loads safetensors weights only, never "
            "pickle files (.pt/.pth/.bin), which can run code when read. Convert one you trust "
            "with: safetensors.torch.save_file(torch.load(PATH, weights_only=True), "
            "'model.safetensors'); a training checkpoint's weights are under its 'model' key."
        )
    if verify:
        verify_sha256(path, expected_sha256)
    from safetensors.torch import load_file

    return load_file(str(path), device=str(device))
