"""The credentials files the agents read their monitoring users from (RabbitMQ's management API,
a Keystone user): ``key=value`` lines, so that a password is never on a command line or in the
CIB. Each service takes the keys it needs from what :func:`read_credentials_file` returns and
says which are missing.

One format for all of them, the shell's simple assignments: ``username=monitor``, spaces around
``=`` allowed, a value in matching single or double quotes taken without them, ``# ...``
comment lines, and ``export NAME=value`` lines, so that the openrc file an operator already has
for the ``openstack`` command works as it is.
"""

from __future__ import annotations


class CredentialsFileError(Exception):
    """The file is missing, unreadable or not text. The message names the file and never holds a
    value from it."""


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def read_credentials_file(path: str, env_prefix: str = "") -> dict[str, str]:
    """Every ``key=value`` of the file at ``path``, the last one of a key winning; lines without
    ``=`` are ignored. ``env_prefix``: a key that starts with it (``OS_`` of an openrc file's
    ``export OS_USERNAME=...``) counts without it, in lower case (``username``).

    Raises :class:`CredentialsFileError` naming the file and why it cannot be read.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise CredentialsFileError(f"credentials file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise CredentialsFileError(f"credentials file {path} is not UTF-8 text") from None
    fields: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        key = key.strip()
        if env_prefix and key.startswith(env_prefix):
            key = key[len(env_prefix) :].lower()
        fields[key] = _unquote(value.strip())
    return fields
