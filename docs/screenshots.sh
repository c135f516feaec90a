#!/usr/bin/env bash
# screenshots.sh: regenerate the pictures of docs/journeys.md (docs/images/desktop/*.png and
# docs/images/phone/*.png) from the pages the issuer serves now.
#
# Usage: bash docs/screenshots.sh
#
# It runs the end-to-end test `screenshots::every_page_a_person_sees_renders_on_a_desktop_and_a_phone`
# through tests/run.sh (which installs and starts everything the test needs: the API server,
# Chromium, the identity provider, PostgreSQL). The test walks the contractor's, the approver's
# and the auditor's journeys against a real issuer and renders each page in headless Chromium
# at 1280 px and at 360 px; with SCREENSHOTS_DIR set it copies the PNGs there. The same test
# runs in CI without copying (the pictures then stay in target/e2e-artifacts/pages/).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/docs/images"
rm -rf "$out/desktop" "$out/phone"
SCREENSHOTS_DIR="$out" bash tests/run.sh -- screenshots::
ls "$out/desktop" "$out/phone"
