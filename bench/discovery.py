"""Discovery time: list 2,500 Samba AD accounts through pamrotate's discovery (paged search, 1,000 a page).

Starts a throwaway Samba DC (as root) whose OU=Managed holds ``--accounts`` users added offline,
points a directory record at it, and times ``rotation.discovery.discover`` (admin bind, paged
search, parsing, marking the managed ones) over ``--runs`` runs after one warm-up.

Last line: ``discovery accounts=<n> pages=<n> best_s=<s> median_s=<s>``.

Usage: python bench/discovery.py [--accounts 2500] [--runs 5]   (as root)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

from _setup import directory_records, django_in_tempdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    django_in_tempdir()

    from records.models import PamDirectory
    from rotation import discovery
    from rotation.ldap.search import PAGE_SIZE
    from tests.bulk_accounts import add_offline
    from tests.ldapservers import SambaDC

    server_dir = tempfile.mkdtemp(prefix="pamrotate-bench-disc-")
    server = SambaDC(server_dir)
    try:
        add_offline(server, args.accounts, "bench")
        server.start()
        directory_records(server, [], "unused")
        directory = PamDirectory.objects.get(title__startswith="Bench ad")
        directory.user_match = server.people_dn
        directory.save()
        found = discovery.discover(directory)  # warm-up: the first TLS handshake and bind
        assert len(found) == args.accounts, len(found)
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            found = discovery.discover(directory)
            times.append(time.perf_counter() - started)
        pages = -(-len(found) // PAGE_SIZE)
        print(
            f"discovery accounts={len(found)} pages={pages} best_s={min(times):.3f} "
            f"median_s={statistics.median(times):.3f}"
        )
    finally:
        server.close()
        shutil.rmtree(server_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
