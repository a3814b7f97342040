"""A real SMTP server on loopback for the email tests (aiosmtpd).

    python3 smtp_sink.py DIR [USER PASSWORD]

Listens on 127.0.0.1 on a free port and prints the port on its first line. Every message
it accepts becomes DIR/<n>.json (written whole, then renamed): the envelope (MAIL FROM,
RCPT TO), the login it authenticated with, the headers as received, and the MIME parts
(content type and decoded text). With USER and PASSWORD it requires AUTH (PLAIN or
LOGIN, over plain SMTP: loopback only) and refuses mail without it. It exits when its
stdin closes, so it never outlives the test that started it.
"""

import asyncio
import email
import email.policy
import json
import logging
import os
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.compat32)
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            parts.append({
                "content_type": part.get_content_type(),
                "text": payload.decode(charset, "replace"),
            })
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_to": envelope.rcpt_tos,
            "login": session.auth_data if session.authenticated else None,
            "headers": [[name, str(value)] for name, value in message.items()],
            "content_type": message.get_content_type(),
            "parts": parts,
            "raw": envelope.original_content.decode("utf-8", "replace"),
        }
        self.count += 1
        path = os.path.join(self.directory, f"{self.count:06}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 OK queued"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == user.encode() and auth_data.password == password.encode()
        # handled=False: aiosmtpd answers the failure (535) itself.
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)
    return check


async def main():
    # Plain-text AUTH on loopback is the point here, not a risk.
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    directory = sys.argv[1]
    user = sys.argv[2] if len(sys.argv) > 3 else None
    password = sys.argv[3] if len(sys.argv) > 3 else None
    sink = Sink(directory)
    if user is None:
        factory = lambda: SMTP(sink, data_size_limit=64 * 1024 * 1024)
    else:
        factory = lambda: SMTP(
            sink,
            data_size_limit=64 * 1024 * 1024,
            authenticator=authenticator(user, password),
            auth_required=True,
            auth_require_tls=False,
        )
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
asyncio.run(main())
