#!/usr/bin/env bash
# Throw-away system accounts and a PAM service for the PAM end-to-end test
# (tests/e2e/test_auth_serve.py). Root only; safe to run again. Never use these names for
# anything real: their passwords are in this file.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "$0: run as root" >&2; exit 1; }

getent group sdcpp-pamadmins >/dev/null || groupadd --system sdcpp-pamadmins
for user in sdcpp-pamtest sdcpp-pamadmin; do
  id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
done
usermod -a -G sdcpp-pamadmins sdcpp-pamadmin
# --system accounts are created locked; chpasswd sets a usable password
printf '%s\n' 'sdcpp-pamtest:pam-test-Pass-1' 'sdcpp-pamadmin:pam-admin-Pass-2' | chpasswd

cat > /etc/pam.d/sdcpp-test <<'PAM'
# sdcpp's PAM end-to-end test: local passwords only
auth     required  pam_unix.so
account  required  pam_unix.so
PAM
