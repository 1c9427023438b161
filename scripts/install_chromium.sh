#!/usr/bin/env sh
# Install Debian's Chromium for the report's headless-browser test (tests/test_report_browser.py).
# Does nothing when /usr/bin/chromium is already there. Needs root (or sudo) and the Debian archive.
set -eu

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: /usr/bin/chromium"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install_chromium.sh: need root or sudo to run apt-get install chromium" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    $SUDO apt-get update -qq
fi
$SUDO apt-get install -y -qq --no-install-recommends chromium
/usr/bin/chromium --version
