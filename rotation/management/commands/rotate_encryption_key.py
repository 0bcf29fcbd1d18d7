"""Re-encrypt every stored secret under a new key without ever losing the old one first."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from pamrotate import crypto
from pamrotate.crypto import encrypted_columns


def reencrypt_all(ring: crypto.KeyRing) -> int:
    """Re-encrypt under the ring's current key every ciphertext made with another key."""
    changed = 0
    current = ring.current.kid
    for model, field in encrypted_columns():
        rows = model._base_manager.exclude(**{field: ""}).values_list("pk", field)
        for pk, ciphertext in rows.iterator():
            if ring.key_id_of(ciphertext) == current:
                continue
            plaintext = ring.decrypt(ciphertext)
            with transaction.atomic():
                # Only replace what is still the same ciphertext: a rotation may have just run.
                changed += model._base_manager.filter(pk=pk, **{field: ciphertext}).update(
                    **{field: ring.encrypt(plaintext)}
                )
    return changed


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret under a new key. With a key file, a new key is generated and "
        "written first (the old one is kept until every secret is re-encrypted). With keys in "
        "PAMROTATE_ENCRYPTION_KEY, put the new key first, keep the old one after it, run this, "
        "then remove the old key."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reencrypt-only",
            action="store_true",
            help="Do not generate a key; re-encrypt under the first configured key.",
        )

    def handle(self, *args, **options):
        path = crypto.key_file_path()
        old_ring = crypto.load_ring()
        if path is not None and not options["reencrypt_only"]:
            new_key = crypto.Key.generate()
            # 1. The new key goes first, every old key stays: both work during re-encryption.
            crypto.write_key_file(path, [new_key, *old_ring.keys])
            crypto.reset_ring()
        elif path is None and not options["reencrypt_only"]:
            raise CommandError(
                "The keys come from PAMROTATE_ENCRYPTION_KEY: put a new key first in it "
                "(old keys after), restart, and run this command with --reencrypt-only."
            )
        ring = crypto.ring()
        changed = reencrypt_all(ring)
        # The canary is checked at every start: it must not be left under a key about to go.
        crypto.write_canary(ring)
        # 2. Prove that nothing is left under an old key before dropping any.
        leftovers = sum(
            1
            for model, field in encrypted_columns()
            for ciphertext in model._base_manager.exclude(**{field: ""}).values_list(field, flat=True)
            if ring.key_id_of(ciphertext) != ring.current.kid
        )
        if leftovers:
            raise CommandError(f"{leftovers} secrets are still under an old key; nothing was removed.")
        if path is not None:
            crypto.write_key_file(path, [ring.current])
            crypto.reset_ring()
            self.stdout.write(
                f"Re-encrypted {changed} secrets under key {ring.current.kid}; {path} now holds only it."
            )
        else:
            self.stdout.write(
                f"Re-encrypted {changed} secrets under key {ring.current.kid}; "
                "you can now remove the old keys from PAMROTATE_ENCRYPTION_KEY."
            )
