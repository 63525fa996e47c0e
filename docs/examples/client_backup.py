"""
An FTPS client in a few lines: log in, list the remote directory (MLSD, or
LIST on older servers), download every file that is not here yet (resuming
partial downloads), upload a report, log out.

    python docs/examples/client_backup.py ftp://alice@ftp.example.com/ ca.pem backup/

The password comes from the URL or from TXFTPS_PASSWORD. tests.test_examples
runs fetchAll() against the real twistd ftps.
"""

from __future__ import annotations

import os
import sys

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from txftps.client import ClientTLS, FTPCommandError, connect


async def fetchAll(reactor, url: str, caFile: str, localDir: str) -> list[str]:
    """
    Download each remote file of C{url}'s directory into C{localDir} and
    upload C{backup-report.txt} listing them.

    @return: the names downloaded.
    """
    client = await connect(
        reactor, url, ClientTLS(caFile=caFile), password=os.environ.get("TXFTPS_PASSWORD")
    )
    fetched = []
    try:
        for entry in sorted(await client.list(), key=lambda entry: entry.name):
            if not entry.isFile:
                continue
            local = os.path.join(localDir, entry.name)
            if os.path.exists(local) and os.path.getsize(local) == entry.size:
                continue
            # Written to local + ".part" and renamed once complete.
            await client.retrieveFile(entry.name, local, resume=True)
            fetched.append(entry.name)
        report = os.path.join(localDir, "backup-report.txt")
        with open(report, "w") as f:
            f.write("\n".join(fetched) + "\n")
        try:
            await client.storeFile(report, "backup-report.txt")
        except FTPCommandError as e:
            print(f"could not upload the report: {e.code} {e.text}")
    finally:
        await client.quit()
    return fetched


def main(reactor, url: str, caFile: str, localDir: str) -> Deferred[None]:
    async def run() -> None:
        names = await fetchAll(reactor, url, caFile, localDir)
        print(f"fetched {len(names)} files: {', '.join(names)}")

    return Deferred.fromCoroutine(run())


if __name__ == "__main__":
    react(main, sys.argv[1:4])
