"""Issue 2: the import streams, so its memory stays flat as files grow.

Imports generated files of N and 10*N rows (N = 100,000; 1,000,000 rows at full scale) in
fresh processes and prints each one's peak resident memory. Baseline: the peak of the smaller.
"""

from __future__ import annotations

import csv
import subprocess
import sys

from _common import DATA_DIR, fresh_sqlite, report, scale

SMALL = max(5_000, int(100_000 * scale()))

CHILD = """
import resource, sys
from pathlib import Path
from tidings.clock import SystemClock
from tidings.contacts.importer import import_contacts
from tidings.db.engine import create_database
from tidings.db.migrate import upgrade
database = create_database(f"sqlite:///{sys.argv[2]}")
upgrade(database)
with open(sys.argv[1], "rb") as stream:
    summary = import_contacts(database, stream, clock=SystemClock(), rejected_path=Path(sys.argv[1] + ".rejected"),
                              list_name="Newsletter", tag="Imported")
assert summary.rejected == 0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, summary.created)
"""


def peak_mib(rows: int) -> float:
    path = DATA_DIR / f"memory_{rows}.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "last_name"])
        for i in range(rows):
            writer.writerow([f"m{i}@example{i % 53}.org", f"First{i}", f"Last{i}"])
    db = fresh_sqlite(f"memory_{rows}.db")
    output = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(db)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert int(output[1]) == rows
    return float(output[0])


def main() -> None:
    DATA_DIR.mkdir(exist_ok=True)
    small = peak_mib(SMALL)
    large = peak_mib(SMALL * 10)
    report(f"peak memory importing {SMALL:,} rows", small, "MiB")
    report(f"peak memory importing {SMALL * 10:,} rows", large, "MiB", small, "flat: ratio ~1")


if __name__ == "__main__":
    main()
