"""AES-128-CBC through libcrypto, the stand-in for pyghmi's use of the cryptography package."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from stackha.fencing.openssl_aes import AES, CBC, Cipher

# NIST SP 800-38A, F.2.1 CBC-AES128.Encrypt (and F.2.2, its decryption).
KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
PLAIN = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
CIPHERTEXT = bytes.fromhex(
    "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
    "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
)


def crypt(encrypt, data, key=KEY, iv=IV):
    cipher = Cipher(algorithm=AES(key), mode=CBC(iv), backend=None)
    context = cipher.encryptor() if encrypt else cipher.decryptor()
    return context.update(data) + context.finalize()


def test_nist_cbc_aes128_vectors_both_ways():
    assert crypt(True, PLAIN) == CIPHERTEXT
    assert crypt(False, CIPHERTEXT) == PLAIN


def test_agrees_with_the_cryptography_package_on_random_data():
    from cryptography.hazmat.primitives.ciphers import Cipher as RealCipher
    from cryptography.hazmat.primitives.ciphers import algorithms, modes

    for size in (16, 32, 160):
        key, iv, data = os.urandom(16), os.urandom(16), os.urandom(size)
        real = RealCipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        assert crypt(True, data, key, iv) == real.update(data) + real.finalize()


def test_refuses_partial_blocks_and_wrong_sizes():
    with pytest.raises(ValueError, match="whole 16-byte blocks"):
        crypt(True, b"x" * 17)
    with pytest.raises(ValueError, match="16-byte key"):
        AES(b"short")
    with pytest.raises(ValueError, match="16-byte IV"):
        CBC(b"short")


def test_pyghmi_gets_it_and_the_real_package_stays_importable():
    """In a fresh interpreter: pyghmi's session encrypts with libcrypto, cryptography's Rust
    bindings are never loaded for it, and a later import of cryptography finds the real one."""
    script = """
import sys
from stackha.fencing.openssl_aes import Cipher, session_module
session, note = session_module()
assert session.Cipher is Cipher and note is None, (session.Cipher, note)
assert "cryptography.hazmat.bindings._rust" not in sys.modules
from cryptography.hazmat.primitives.ciphers import Cipher as Real
assert Real is not Cipher
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.stdout == "ok\n", result.stderr
