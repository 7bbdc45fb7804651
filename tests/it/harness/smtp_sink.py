"""A real SMTP sink for warden's email tests, built on aiosmtpd (Debian's python3-aiosmtpd).

Run with the system interpreter: /usr/bin/python3 smtp_sink.py --listen 127.0.0.1:PORT --out DIR
[--starttls CERT KEY] [--smtps CERT KEY] [--auth USER:PASSWORD] [--auth-mechanisms PLAIN,LOGIN]

aiosmtpd's command line (python3 -m aiosmtpd) serves STARTTLS and SMTPS but has no option for
AUTH, so this script builds the same aiosmtpd SMTP server itself, adding an authenticator.

Every accepted message is written to DIR/NNNN.json (atomically: temp file, then rename):
mail_from, rcpt_tos, tls ("none" | "starttls" | "implicit"), auth (login and mechanism or
null), headers ([[name, value], ...] decoded), subject (decoded), body (text/plain, decoded,
with \n line ends) and raw (the message as received). Recipients whose local part is
"reject" get 550 and "later" get 451, so tests can see permanent and transient replies.
DIR/ready is created once the server listens.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, out):
        self.out = out
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "reject":
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        if local == "later":
            return "451 4.3.0 <%s>: try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        body = part.get_content() if part is not None else ""
        if server.transport.get_extra_info("sslcontext") is not None and session.ssl is None:
            tls = "implicit"
        elif session.ssl is not None:
            tls = "starttls"
        else:
            tls = "none"
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls": tls,
            "auth": session.auth_data if isinstance(session.auth_data, dict) else None,
            "headers": [[k, str(v)] for k, v in msg.items()],
            "subject": str(msg["subject"]),
            "body": body.replace("\r\n", "\n"),
            "raw": raw.decode("utf-8", "replace"),
        }
        self.count += 1
        path = os.path.join(self.out, "%04d.json" % self.count)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, indent=1)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Message accepted for delivery"


def tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--smtps", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth", metavar="USER:PASSWORD")
    p.add_argument("--auth-mechanisms", default="PLAIN,LOGIN")
    args = p.parse_args()

    host, port = args.listen.rsplit(":", 1)
    handler = Recorder(args.out)
    kwargs = {}
    if args.starttls:
        kwargs["tls_context"] = tls_context(*args.starttls)
        kwargs["require_starttls"] = True
    if args.auth:
        user, password = args.auth.split(":", 1)
        offered = {m.strip().upper() for m in args.auth_mechanisms.split(",")}

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                mechanism in offered
                and isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            if not ok:
                return AuthResult(success=False, handled=False)
            return AuthResult(
                success=True,
                auth_data={"login": user, "mechanism": mechanism},
            )

        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
        kwargs["auth_exclude_mechanism"] = [
            m for m in ("PLAIN", "LOGIN") if m not in offered
        ]
        # Plain SMTP with AUTH only when neither TLS mode is set (never used by the tests,
        # which refuse to send credentials in the clear).
        kwargs["auth_require_tls"] = bool(args.starttls or args.smtps)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server_ssl = tls_context(*args.smtps) if args.smtps else None

    def factory():
        return SMTP(handler, hostname="sink.test", loop=loop, **kwargs)

    server = loop.run_until_complete(
        loop.create_server(factory, host=host, port=int(port), ssl=server_ssl)
    )
    open(os.path.join(args.out, "ready"), "w").close()
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
