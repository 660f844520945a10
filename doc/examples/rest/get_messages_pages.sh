#!/bin/sh
# expect: 200
BASE=${BASE:-http://127.0.0.1:8888/api/v1}

# Page 1, then the page after it: pass "next" of one page as "before".
page=$(curl -sS "$BASE/messages/?limit=2")
echo "$page"
next=$(printf '%s' "$page" | python3 -c 'import json, sys; print(json.load(sys.stdin)["next"] or "")')
[ -n "$next" ] || exit 0   # one page was all there is
curl -sS -i "$BASE/messages/?limit=2&before=$next"
