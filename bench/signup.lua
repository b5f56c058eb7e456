-- POST one sign-up per request, each with a DISTINCT e-mail address.
--
-- The address is built from a run id (BENCH_RUN_ID, set by the bench), the wrk thread
-- id (numbered in setup), a random per-thread prefix and a per-thread counter, so no two
-- requests of a run, nor of two runs, share an e-mail.  The path comes from the URL
-- given to wrk (/v1/consents for the service, /write for the baseline); the
-- Authorization header, when needed, comes from wrk's -H flag.

local threads_created = 0

function setup(thread)
  threads_created = threads_created + 1
  thread:set("thread_id", threads_created)
end

local counter = 0
local prefix = ""

function init(args)
  local run = os.getenv("BENCH_RUN_ID") or tostring(os.time())
  local id = thread_id or 0
  math.randomseed(os.time() * 1000 + id * 7919)
  prefix = string.format("%s-t%d-%06x", run, id, math.random(0, 0xffffff))
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local email = string.format("bench-%s-%d@example.se", prefix, counter)
  local body = '{"subject": {"email": "' .. email .. '", "first_name": "Anna", '
    .. '"country": "SE", "birth_date": "1990-04-01"}, '
    .. '"purposes": {"loyalty_club": true, "marketing_email": true, "profiling": false}, '
    .. '"notice_version": "2026-11-01", '
    .. '"source": {"form": "signup-web", "channel": "web"}}'
  return wrk.format("POST", nil, nil, body)
end
