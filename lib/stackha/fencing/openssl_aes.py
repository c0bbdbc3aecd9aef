"""AES-128-CBC from the system's OpenSSL through ctypes, for pyghmi's IPMI 2.0 sessions.

pyghmi encrypts IPMI payloads (cipher suite 3: AES-CBC-128) with the ``cryptography`` package,
whose Rust bindings take about 16 ms to import: a quarter of a whole ``status`` call. The
cipher itself is the same OpenSSL either way, so this module offers the four names pyghmi's
session module imports (``default_backend``, ``Cipher``, ``algorithms``, ``modes``), backed by
``libcrypto``'s EVP interface, loaded in about 3 ms. pyghmi hands it whole blocks (it pads
payloads itself), so padding is off.

Where ``libcrypto.so.3`` cannot be loaded, or the stand-in does not fit the pyghmi installed (a
release that imports a name it lacks, or calls it differently at import time),
:func:`session_module` imports pyghmi as it is and says why, for the agent's log.
"""

from __future__ import annotations

import ctypes
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Optional

LIBCRYPTO = "libcrypto.so.3"  # OpenSSL 3: Debian 12 and newer, RHEL 9
BLOCK = 16
FALLBACK = "AES through the cryptography package"
_SHIMMED = (
    "cryptography",
    "cryptography.hazmat",
    "cryptography.hazmat.backends",
    "cryptography.hazmat.primitives",
    "cryptography.hazmat.primitives.ciphers",
)


class OpenSslError(RuntimeError):
    """libcrypto refused an operation."""


def _load() -> Any:
    library = ctypes.CDLL(LIBCRYPTO)
    pointer = ctypes.c_void_p
    library.EVP_CIPHER_CTX_new.restype = pointer
    library.EVP_CIPHER_CTX_new.argtypes = []
    library.EVP_CIPHER_CTX_free.restype = None
    library.EVP_CIPHER_CTX_free.argtypes = [pointer]
    library.EVP_aes_128_cbc.restype = pointer
    library.EVP_aes_128_cbc.argtypes = []
    library.EVP_CipherInit_ex.restype = ctypes.c_int
    library.EVP_CipherInit_ex.argtypes = [
        pointer,
        pointer,
        pointer,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    library.EVP_CIPHER_CTX_set_padding.restype = ctypes.c_int
    library.EVP_CIPHER_CTX_set_padding.argtypes = [pointer, ctypes.c_int]
    library.EVP_CipherUpdate.restype = ctypes.c_int
    library.EVP_CipherUpdate.argtypes = [
        pointer,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    return library


_library: Any = None


def library() -> Any:
    global _library
    if _library is None:
        _library = _load()
    return _library


class AES:
    def __init__(self, key: bytes) -> None:
        if len(key) != BLOCK:
            raise ValueError("AES-128 needs a 16-byte key")
        self.key = bytes(key)


class CBC:
    def __init__(self, iv: bytes) -> None:
        if len(iv) != BLOCK:
            raise ValueError("CBC needs a 16-byte IV")
        self.iv = bytes(iv)


class _Context:
    """One encryption or decryption: whole blocks in, the same number of bytes out."""

    def __init__(self, key: bytes, iv: bytes, encrypt: bool) -> None:
        self.lib = library()
        self.context = self.lib.EVP_CIPHER_CTX_new()
        if not self.context:
            raise OpenSslError("EVP_CIPHER_CTX_new failed")
        ok = self.lib.EVP_CipherInit_ex(
            self.context, self.lib.EVP_aes_128_cbc(), None, key, iv, 1 if encrypt else 0
        )
        if ok != 1 or self.lib.EVP_CIPHER_CTX_set_padding(self.context, 0) != 1:
            self._free()
            raise OpenSslError("EVP_CipherInit_ex failed")

    def update(self, data: bytes) -> bytes:
        if self.context is None:
            raise OpenSslError("the cipher context is finalized")
        data = bytes(data)
        if len(data) % BLOCK:
            raise ValueError("AES-CBC without padding takes whole 16-byte blocks")
        out = ctypes.create_string_buffer(len(data) + BLOCK)
        written = ctypes.c_int(0)
        if (
            self.lib.EVP_CipherUpdate(self.context, out, ctypes.byref(written), data, len(data))
            != 1
        ):
            raise OpenSslError("EVP_CipherUpdate failed")
        return out.raw[: written.value]

    def finalize(self) -> bytes:
        self._free()
        return b""  # no padding and whole blocks: nothing is held back

    def _free(self) -> None:
        if self.context is not None:
            self.lib.EVP_CIPHER_CTX_free(self.context)
            self.context = None

    def __del__(self) -> None:
        self._free()


class Cipher:
    """``cryptography``'s ``Cipher(algorithm, mode, backend)``, AES-CBC only."""

    def __init__(self, algorithm: AES, mode: CBC, backend: object = None) -> None:
        self.algorithm = algorithm
        self.mode = mode

    def encryptor(self) -> _Context:
        return _Context(self.algorithm.key, self.mode.iv, encrypt=True)

    def decryptor(self) -> _Context:
        return _Context(self.algorithm.key, self.mode.iv, encrypt=False)


def default_backend() -> None:
    return None


def session_module() -> tuple[ModuleType, Optional[str]]:
    """pyghmi's ``pyghmi.ipmi.private.session``, with AES from libcrypto where it fits.

    Returns the module and a note for the log when pyghmi's AES is the ``cryptography``
    package's after all (None when libcrypto's is used, or when the module or the real package
    was imported before: no choice was made here). The stand-in ``cryptography`` modules exist
    only while pyghmi's session module is imported (it binds the names it needs then);
    afterwards ``import cryptography`` finds the real one. Raises what importing pyghmi as
    shipped raises (ImportError when it or a module it needs is missing).
    """
    name = "pyghmi.ipmi.private.session"
    if name in sys.modules:
        return sys.modules[name], None
    if "cryptography" in sys.modules:
        return _import(name), None  # the real package is loaded already: nothing to save
    try:
        library()
    except (OSError, AttributeError) as error:
        # No usable OpenSSL 3: pyghmi with the cryptography package.
        return _import(name), f"{FALLBACK} ({LIBCRYPTO} does not load: {error})"
    import types

    before = set(sys.modules)
    shims = {}
    for module_name in _SHIMMED:
        shim = types.ModuleType(module_name)
        shim.__path__ = []  # a package, as far as the import system asks
        shims[module_name] = shim
    shims["cryptography.hazmat.backends"].default_backend = default_backend  # type: ignore[attr-defined]
    ciphers = shims["cryptography.hazmat.primitives.ciphers"]
    ciphers.Cipher = Cipher  # type: ignore[attr-defined]
    ciphers.algorithms = types.SimpleNamespace(AES=AES)  # type: ignore[attr-defined]
    ciphers.modes = types.SimpleNamespace(CBC=CBC)  # type: ignore[attr-defined]
    sys.modules.update(shims)
    try:
        return _import(name), None
    except Exception as error:  # noqa: BLE001 - any misfit of the stand-in: pyghmi as shipped below
        misfit = f"{type(error).__name__}: {error}"
    finally:
        for module_name in _SHIMMED:
            if sys.modules.get(module_name) is shims[module_name]:
                del sys.modules[module_name]
    # pyghmi modules imported before the failure may hold stand-in names: import them afresh.
    for module_name in set(sys.modules) - before:
        if module_name.split(".")[0] in ("pyghmi", "cryptography"):
            del sys.modules[module_name]
    return _import(name), f"{FALLBACK} (the libcrypto shortcut does not fit: {misfit})"


def _import(name: str) -> ModuleType:
    # The import statement's machinery, not importlib.import_module: only the former is
    # reported by python -X importtime, which the benchmark reads.
    __import__(name)
    return sys.modules[name]
