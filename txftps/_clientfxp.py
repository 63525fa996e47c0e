# -*- test-case-name: tests.test_cli -*-
"""
Server-to-server copies (FXP) protected by TLS: the data goes from one
server to the other directly, never through the client.

Between two servers one must be the TLS client on the data connection. FTP
servers are TLS servers on data connections unless told otherwise: C{SSCN ON}
makes a server the TLS client for the following transfers; C{CPSV} is a
C{PASV} after which the server is the TLS client. We use whichever side's
FEAT lists one of them, and refuse (L{UnsupportedFeature}) when neither
does: an unprotected copy would send the file in clear.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, DeferredList
from twisted.python.failure import Failure

from txftps._clientdata import parsePASV, passiveHost, portArgument
from txftps._clienterrors import FTPClientError, FTPCommandError, UnsupportedFeature
from txftps._clientprotocol import Reply
from txftps._clientsession import FTPSClient


def _plan(
    source: FTPSClient, destination: FTPSClient
) -> tuple[FTPSClient, str, FTPSClient, FTPSClient | None]:
    """
    Choose roles: the passive side, its passive command (PASV or CPSV), the
    active side (PORT), and the side that gets C{SSCN ON}, if any.
    """
    if "CPSV" in source.features:
        return source, "CPSV", destination, None
    if "SSCN" in destination.features:
        return source, "PASV", destination, destination
    if "SSCN" in source.features:
        return destination, "PASV", source, source
    if "CPSV" in destination.features:
        return destination, "CPSV", source, None
    raise UnsupportedFeature(
        "neither server supports SSCN or CPSV (not in FEAT): a TLS-protected"
        " server-to-server copy is impossible"
    )


def copyBetweenServers(
    source: FTPSClient, sourcePath: str, destination: FTPSClient, destinationPath: str
) -> Deferred[None]:
    """
    Copy C{sourcePath} on C{source} to C{destinationPath} on C{destination}
    with a data connection between the two servers, protected by TLS (both
    sessions are PROT P).

    @return: fires when both servers confirmed the transfer; fails with
        L{UnsupportedFeature} when neither server supports SSCN or CPSV, or
        with the first failure reply.
    """

    async def run() -> None:
        passive, passiveCommand, active, sscn = _plan(source, destination)
        if sscn is not None:
            await sscn.protocol.sendCommand("SSCN ON")
        try:
            reply = await passive.protocol.sendCommand(passiveCommand)
            host, port = parsePASV(reply.lastText)
            host = passiveHost(host, passive.peerHost)
            await active.protocol.sendCommand(f"PORT {portArgument(host, port)}")
            commands = {
                source: f"RETR {sourcePath}",
                destination: f"STOR {destinationPath}",
            }
            first = passive.protocol.sendCommand(commands[passive], lambda reply: None)
            second = active.protocol.sendCommand(commands[active], lambda reply: None)
            aborted: list[FTPSClient] = []

            def abortOther(failure: Failure, other: FTPSClient, final: Deferred[Reply]) -> Failure:
                if not final.called and other not in aborted:
                    aborted.append(other)
                    other.protocol.sendCommand("ABOR").addErrback(lambda _: None)
                return failure

            first.addErrback(abortOther, active, second)
            second.addErrback(abortOther, passive, first)
            results = await DeferredList([first, second], consumeErrors=True)
            for ok, value in results:
                if not ok:
                    error = getattr(value, "value", None)
                    if isinstance(error, FTPClientError):
                        raise error
                    raise FTPClientError(str(value))
        finally:
            if sscn is not None:
                try:
                    await sscn.protocol.sendCommand("SSCN OFF")
                except FTPCommandError:
                    pass

    return source._lock.run(lambda: destination._lock.run(lambda: Deferred.fromCoroutine(run())))
