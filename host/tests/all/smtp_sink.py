"""A real SMTP server on loopback for the email tests (aiosmtpd).

    python3 smtp_sink.py DIR [--login USER PASSWORD] [--tls implicit|starttls CERT KEY]

Listens on 127.0.0.1 on a free port and prints the port on its first line. Every message
it accepts becomes DIR/<n>.json (written whole, then renamed): the envelope (MAIL FROM,
RCPT TO), the login it authenticated with, whether the connection was TLS (and its
version), the headers as received, and the MIME parts (content type and decoded text).
With --login it requires AUTH (PLAIN or LOGIN; over plain SMTP too: loopback only) and
refuses mail without it. With --tls implicit it speaks TLS from the first byte (smtps);
with --tls starttls it offers STARTTLS and refuses mail before it; CERT and KEY are PEM
files (the certificate chain and its key). It exits when its stdin closes, so it never
outlives the test that started it.
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import ssl
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
        tls = server.transport.get_extra_info("ssl_object")
        record = {
            "tls": tls.version() if tls is not None else None,
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
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--login", nargs=2, metavar=("USER", "PASSWORD"))
    parser.add_argument("--tls", nargs=3, metavar=("MODE", "CERT", "KEY"))
    args = parser.parse_args()
    sink = Sink(args.dir)
    options = {"data_size_limit": 64 * 1024 * 1024}
    if args.login:
        options.update(
            authenticator=authenticator(*args.login),
            auth_required=True,
            auth_require_tls=False,
        )
    implicit = None
    if args.tls:
        mode, cert, key = args.tls
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        if mode == "implicit":
            implicit = context
        elif mode == "starttls":
            options.update(tls_context=context, require_starttls=True)
        else:
            sys.exit(f"--tls {mode}: implicit or starttls")
    factory = lambda: SMTP(sink, **options)
    server = await asyncio.get_running_loop().create_server(
        factory, "127.0.0.1", 0, ssl=implicit
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
asyncio.run(main())
