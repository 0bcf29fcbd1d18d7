"""Secrets at rest, the one name the rest of the code imports: ``crypto.encrypt``, ``crypto.decrypt``.

One module per concern behind it: ``envelope`` (the ciphertext format, AES-GCM), ``keyring``
(keys, the key file, the process-wide ring), ``canary`` (the known text every start decrypts) and
``startchecks`` (check_keys at start, the key file's mode in ``manage.py check``).
"""

from __future__ import annotations

from pamrotate.canary import CANARY, canary_path, write_canary
from pamrotate.envelope import PREFIX, DecryptionError
from pamrotate.keyring import (
    Key,
    KeyRing,
    decrypt,
    encrypt,
    key_file_path,
    key_source,
    load_ring,
    parse_keys,
    reset_ring,
    ring,
    write_key_file,
)
from pamrotate.startchecks import check_keys, encrypted_columns, key_file_problems

__all__ = [
    "CANARY",
    "PREFIX",
    "DecryptionError",
    "Key",
    "KeyRing",
    "canary_path",
    "check_keys",
    "decrypt",
    "encrypt",
    "encrypted_columns",
    "key_file_path",
    "key_file_problems",
    "key_source",
    "load_ring",
    "parse_keys",
    "reset_ring",
    "ring",
    "write_canary",
    "write_key_file",
]
