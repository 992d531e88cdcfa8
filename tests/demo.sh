#!/usr/bin/env bash
# The crmsync demo: starts a throwaway Dovecot on a free loopback port with a sample mailbox,
# sets up a CRM with a user and a few records, lets "another mail client" (Python's imaplib)
# track some messages and "a calendar and address-book client" (files in vdir directories)
# track an event, a task and a contact, runs crmsync passes, and shows what landed in the CRM
# and what the CRM's changes did to the person's files. A second person's calendar lives on a
# throwaway Radicale (CalDAV) server that crmsync finds by discovery and syncs directly.
#
#   bash tests/demo.sh
#
# Needs Debian 12 with the Rust toolchain; installs Dovecot and curl when they are missing (as
# root, or with sudo), and Radicale from PyPI into target/demo-venv. Everything lives in a temporary directory that is removed at the end, unless
# KEEP=1 is set.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dovecot >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "demo: installing Dovecot and curl"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends dovecot-imapd curl
fi
venv=target/demo-venv
if ! "$venv/bin/python" -c "import radicale" 2>/dev/null; then
    echo "demo: installing Radicale into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "radicale==3.9.0"
fi
radicale="$PWD/$venv/bin/radicale"

echo "demo: building crmsync"
cargo build --release --locked -q
crmsync="$PWD/target/release/crmsync"

work=$(mktemp -d /tmp/crmsync-demo.XXXXXX)
chmod 755 "$work"
cleanup() {
    [ -n "${dovecot_pid:-}" ] && kill "$dovecot_pid" 2>/dev/null || true
    [ -n "${radicale_pid:-}" ] && kill "$radicale_pid" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "demo: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/dovecot/run" "$work/dovecot/state" "$work/dovecot/mail"
chown -R mail:mail "$work/dovecot/mail"
echo 'alice:{PLAIN}demo-password' > "$work/dovecot/passwd"
cat > "$work/dovecot/dovecot.conf" <<CONF
base_dir = $work/dovecot/run
state_dir = $work/dovecot/state
log_path = $work/dovecot/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
first_valid_uid = 8
mail_location = maildir:$work/dovecot/mail/%u
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  inet_listener imap {
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $work/dovecot/passwd
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$work/dovecot/mail/%u
}
CONF
dovecot -F -c "$work/dovecot/dovecot.conf" &
dovecot_pid=$!
for _ in $(seq 100); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
echo "demo: Dovecot is listening on 127.0.0.1:$port"

dav_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/radicale"
echo 'bob:bob-dav-password' > "$work/radicale/users"
cat > "$work/radicale/config" <<CONF
[server]
hosts = 127.0.0.1:$dav_port
[auth]
type = htpasswd
htpasswd_filename = $work/radicale/users
htpasswd_encryption = plain
[rights]
type = owner_only
[storage]
filesystem_folder = $work/radicale/collections
[logging]
level = warning
CONF
"$radicale" --config "$work/radicale/config" 2>"$work/radicale/log" &
radicale_pid=$!
for _ in $(seq 100); do
    (echo > "/dev/tcp/127.0.0.1/$dav_port") 2>/dev/null && break
    sleep 0.1
done
dav="http://127.0.0.1:$dav_port"
curl -sf -u bob:bob-dav-password -X MKCALENDAR "$dav/bob/work/" >/dev/null
echo "demo: Radicale (CalDAV) is listening on 127.0.0.1:$dav_port, with Bob's calendar /bob/work/"

printf 'bob-dav-password' > "$work/bob.dav"
chmod 600 "$work/bob.dav"
printf 'demo-password' > "$work/alice.imap"
chmod 600 "$work/alice.imap"
cat > "$work/crmsync.toml" <<CONF
[crm]
database = "crm.sqlite3"

[status]
file = "status.json"

[[mailbox]]
id = "alice"
owner = "alice@example.com"

[mailbox.imap]
host = "127.0.0.1"
port = $port
security = "none"          # loopback only; use tls or starttls for a real server
username = "alice"
password_file = "alice.imap"
folders = ["INBOX"]

[mailbox.calendar]
path = "calendar"

[mailbox.contacts]
path = "contacts"

[mailbox.tracking]
folders = { "Clients/Contoso" = "ACC-1002" }

# Bob's calendar is on a CalDAV server: crmsync finds it from the server's address
# (/.well-known/caldav, his principal, his calendar home) and syncs it directly.
[[mailbox]]
id = "bob"
owner = "bob@example.com"

[mailbox.calendar]
url = "$dav/"
username = "bob"
password_file = "bob.dav"  # http:// only to loopback; https:// for a real server
CONF
mkdir -p "$work/calendar" "$work/contacts"
export CRMSYNC_CONFIG="$work/crmsync.toml"

run() { echo; echo "\$ crmsync $*"; "$crmsync" "$@"; }
run user add alice@example.com --name "Alice Adams"
run user add bob@example.com --name "Bob Brown"
run record add account --name "Adventure Works" --email info@adventure-works.com
run record add account --name "Contoso"
run record add contact --name "Dana Smith" --email dana@adventure-works.com --parent ACC-1001

echo
echo "demo: another mail client appends four messages: one with the keyword crm, one with"
echo "demo: crm:ACC-1001, one in the tracked folder Clients/Contoso, one private (untracked)"
python3 - "$port" <<'PY'
import imaplib, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login("alice", "demo-password")
imap.create('"Clients/Contoso"')
def message(mid, sender, subject, body):
    return (f"Message-ID: <{mid}>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\nFrom: {sender}\r\n"
            f"To: alice@example.com\r\nSubject: {subject}\r\n\r\n{body}\r\n").encode()
imap.append("INBOX", "(crm)", None, message("q1@adventure-works.com", "Dana Smith <dana@adventure-works.com>", "Quote request", "Could you send us a quote?"))
imap.append("INBOX", "(crm:ACC-1001)", None, message("c1@adventure-works.com", "info@adventure-works.com", "Signed contract", "Here it is."))
imap.append('"Clients/Contoso"', "()", None, message("k1@contoso.example", "ceo@contoso.example", "Kickoff", "See you Monday."))
imap.append("INBOX", "()", None, message("p1@family.example", "mum@family.example", "Sunday lunch", "Private."))
imap.logout()
PY

echo
echo "demo: a calendar client (khal, Thunderbird through vdirsyncer...) has an event with the"
echo "demo: category CRM regarding ACC-1001, a task with the category, and a private event; an"
echo "demo: address-book client has a contact with the category"
printf '%s\r\n' BEGIN:VCALENDAR VERSION:2.0 PRODID:-//demo//EN BEGIN:VEVENT UID:kickoff@demo \
    DTSTAMP:20261129T100000Z 'SUMMARY:Kickoff with Adventure Works' \
    'DTSTART;TZID=Europe/Berlin:20261201T100000' 'DTEND;TZID=Europe/Berlin:20261201T110000' \
    ATTENDEE:mailto:dana@adventure-works.com CATEGORIES:Work,CRM X-CRM-REGARDING:ACC-1001 \
    BEGIN:VALARM ACTION:DISPLAY TRIGGER:-PT15M DESCRIPTION:Kickoff END:VALARM \
    END:VEVENT END:VCALENDAR > "$work/calendar/kickoff.ics"
printf '%s\r\n' BEGIN:VCALENDAR VERSION:2.0 BEGIN:VTODO UID:quote@demo 'SUMMARY:Send the quote' \
    'DUE;VALUE=DATE:20261204' CATEGORIES:CRM END:VTODO END:VCALENDAR > "$work/calendar/quote.ics"
printf '%s\r\n' BEGIN:VCALENDAR VERSION:2.0 BEGIN:VEVENT UID:dentist@demo SUMMARY:Dentist \
    DTSTART:20261202T080000Z CATEGORIES:Private END:VEVENT END:VCALENDAR > "$work/calendar/dentist.ics"
printf '%s\r\n' BEGIN:VCARD VERSION:3.0 UID:eve@demo 'FN:Eve Doe' 'N:Doe;Eve;;;' \
    EMAIL:eve@contoso.example ORG:Contoso TITLE:Buyer CATEGORIES:CRM END:VCARD > "$work/contacts/eve.vcf"

run sync
run activity list
run record list contact
quote=$("$crmsync" activity list --json | python3 -c 'import json,sys; print(next(a["id"] for a in json.load(sys.stdin) if a["subject"] == "Quote request"))')
run item show --mailbox alice --message-id q1@adventure-works.com

echo
echo "demo: the CRM sets the regarding of the quote request to Contoso; the next pass writes"
echo "demo: the keyword crm:ACC-1002 to the message"
run activity regarding "${quote:0:8}" ACC-1002
run sync
python3 - "$port" <<'PY'
import imaplib, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login("alice", "demo-password")
imap.select("INBOX")
typ, data = imap.fetch("1", "(FLAGS)")
print("demo: flags of the quote request on the server now:", data[0].decode())
imap.logout()
PY

echo
echo "demo: the CRM moves the kickoff by an hour and creates a call for Alice; the next pass"
echo "demo: writes both into her calendar (the kickoff stays in her time zone, its alarm kept)"
kickoff=$("$crmsync" activity list --type appointment --json | python3 -c 'import json,sys; print(next(a["id"] for a in json.load(sys.stdin) if a["subject"].startswith("Kickoff")))')
run activity set "${kickoff:0:8}" start=2026-12-01T10:00:00Z end=2026-12-01T11:00:00Z
run activity add appointment --owner alice@example.com --subject "Call Contoso" \
    --start 2026-12-02T15:00:00Z --end 2026-12-02T15:30:00Z --regarding ACC-1002
run sync
echo; echo "\$ cat calendar/kickoff.ics"; cat "$work/calendar/kickoff.ics"
echo; echo "\$ ls calendar"; ls "$work/calendar"
run item show --mailbox alice --href kickoff.ics

echo
echo "demo: Bob's calendar client saves an event with the category CRM on the Radicale server"
printf '%s\r\n' BEGIN:VCALENDAR VERSION:2.0 PRODID:-//demo//EN BEGIN:VEVENT UID:review@demo \
    DTSTAMP:20261129T100000Z 'SUMMARY:Contract review with Contoso' \
    DTSTART:20261203T130000Z DTEND:20261203T140000Z ATTENDEE:mailto:ceo@contoso.example \
    CATEGORIES:CRM X-CRM-REGARDING:ACC-1002 END:VEVENT END:VCALENDAR |
    curl -sf -u bob:bob-dav-password -X PUT -H 'Content-Type: text/calendar' \
        --data-binary @- "$dav/bob/work/review.ics" >/dev/null
run check --mailbox bob
run sync --mailbox bob
review=$("$crmsync" activity list --type appointment --json | python3 -c 'import json,sys; print(next(a["id"] for a in json.load(sys.stdin) if a["subject"].startswith("Contract review")))')
echo
echo "demo: the CRM moves the review to a room; the next pass writes it to the server"
run activity set "${review:0:8}" "location=Room 4"
run sync --mailbox bob
echo; echo "\$ curl $dav/bob/work/review.ics"
curl -sf -u bob:bob-dav-password "$dav/bob/work/review.ics"

echo
echo "demo: done. The private message and the private event left nothing in the CRM."
