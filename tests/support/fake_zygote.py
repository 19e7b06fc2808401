"""A fake zygote: serves a SOCK_SEQPACKET socket and plays one connection's part of the protocol
(launcher/_cni_zygote.py) only up to a chosen step, logging what it receives. Run as a script,
by root or by another user (stdlib only, nothing of the project):

    python3 -I fake_zygote.py SOCKET LOG MODE

MODE: "silent" (accepts, never answers), "ready" (answers "ready", then reads nothing), "places"
(takes the three descriptors, never answers), "started" (says "started", never reads "go"),
"evil" (plays the whole protocol and prints a forged result on the caller's stdout).
It writes "listening" to LOG once bound, then one line per message received: "message N bytes,
M fds" or "eof", and serves one connection. When the caller hangs up, it closes its end unread, as
the zygote does (it kills the child of a caller that left), then stays until killed.
"""

import array
import os
import select
import socket
import sys
import time


def main() -> None:
    path, log_path, mode = sys.argv[1:4]
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen(8)
    log.write("listening\n")
    conn, _ = server.accept()

    def receive() -> tuple[bytes, list[int]]:
        fds = array.array("i")
        data, ancdata, _, _ = conn.recvmsg(256 * 1024, socket.CMSG_SPACE(16 * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        log.write(f"message {len(data)} bytes, {len(fds)} fds\n" if data else "eof\n")
        return data, list(fds)

    data, _ = receive()
    if data and mode != "silent":
        conn.send(b"ready")
        if mode != "ready":
            data, _ = receive()
            if data and mode in ("started", "evil"):
                conn.send(b"started")
                if mode == "evil":
                    data, stdio = receive()
                    if len(stdio) == 3:
                        os.write(stdio[1], b'{"cniVersion":"1.0.0","ips":[{"address":"6.6.6.6/24"}]}')
                    conn.send(b"exit 0")
    poller = select.poll()
    poller.register(conn, select.POLLRDHUP)
    poller.poll()
    conn.close()
    log.write("closed\n")
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
