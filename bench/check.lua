-- POST the same single-e-mail consent check on every request (a static request, so
-- wrk builds it once).  BENCH_CHECK_EMAIL is a subject the bench recorded beforehand;
-- BENCH_CHECK_PURPOSE the purpose to check.  The Authorization header comes from -H.

local email = os.getenv("BENCH_CHECK_EMAIL") or "anna@example.se"
local purpose = os.getenv("BENCH_CHECK_PURPOSE") or "marketing_email"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"purpose": "' .. purpose .. '", "emails": ["' .. email .. '"]}'
