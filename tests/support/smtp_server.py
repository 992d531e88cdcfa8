"""A real SMTP submission server for one test, on loopback (aiosmtpd; TESTING.md's recipe).

    python smtp_server.py --port P --dir D [--user U --password W] [--tls CERT KEY]

Every message it accepts is appended to D/received.jsonl as one JSON line:
{"from": ..., "to": [...], "data": ...}. Its behaviour can be changed while it runs, through
files in D that it reads on every command:
- D/refuse: recipient addresses (one per line) answered `550 5.1.1`;
- D/defer: a number N: the next N messages are answered `451 4.3.0` after their final dot
  (each such answer lowers N by one);
- D/stall: while it exists, a message is kept but its final dot is not answered (the client
  times out, or is killed while it waits: whether the message went out it cannot know).
- D/slow: a number of milliseconds: each message is kept, then answered that much later.
With --tls, STARTTLS is offered and required before AUTH. It prints "ready" once listening.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def read_lines(path):
    try:
        with open(path) as f:
            return [line.strip().lower() for line in f if line.strip()]
    except FileNotFoundError:
        return []


class Handler:
    def __init__(self, directory):
        self.directory = directory

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in read_lines(os.path.join(self.directory, "refuse")):
            return "550 5.1.1 <%s>: no such user here" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if os.path.exists(os.path.join(self.directory, "stall")):
            # Queued, but the answer is late: the race a kill can fall into.
            self.keep(envelope)
            while os.path.exists(os.path.join(self.directory, "stall")):
                await asyncio.sleep(0.05)
            return "250 2.0.0 queued"
        slow = read_lines(os.path.join(self.directory, "slow"))
        if slow:
            # Queued, then answered late: a kill in between leaves the client not knowing.
            self.keep(envelope)
            await asyncio.sleep(int(slow[0]) / 1000)
            return "250 2.0.0 queued"
        defer = os.path.join(self.directory, "defer")
        left = read_lines(defer)
        if left and int(left[0]) > 0:
            with open(defer, "w") as f:
                f.write(str(int(left[0]) - 1))
            return "451 4.3.0 try again later"
        self.keep(envelope)
        return "250 2.0.0 queued"

    def keep(self, envelope):
        content = envelope.content
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        record = {"from": envelope.mail_from, "to": envelope.rcpt_tos, "data": content}
        with open(os.path.join(self.directory, "received.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok, handled=False)

    options = {}
    if args.user:
        options.update(authenticator=authenticate, auth_require_tls=bool(args.tls))
    else:
        options.update(auth_require_tls=False)
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls[0], args.tls[1])
        options.update(tls_context=context, require_starttls=True)
    controller = Controller(
        Handler(args.dir), hostname="127.0.0.1", port=args.port, data_size_limit=64 * 1024 * 1024, **options
    )
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
