# A runner reports a failure over HTTP; the reply says what Baton made of it.
curl -sS --fail-with-body -X POST "$BATON_URL/v1/reports/agent_failure" \
  -H "Authorization: Bearer $BATON_TOKEN" -H "Content-Type: application/json" \
  --data @examples/reports/p1-complete.json
