-- refresh_token grant with rotation (bench/token.sh). Every refresh token is
-- used exactly once: each wrk thread holds a pool of tokens (its share of
-- the file TOKEN_REFRESH_FILE, one per line, made by password grants), a
-- request takes one from the pool and the response puts back the rotated
-- token it carries. With one request in flight per connection, a pool at
-- least as large as the thread's connections never runs dry. A failed
-- response loses its token: wrk counts it as an error (non-2xx), and a
-- thread whose pool is empty sends an empty token (refused, counted too).
-- Environment: TOKEN_BASIC (base64 of client_id:client_secret), TOKEN_REFRESH_FILE.
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("index", nthreads)
end

local pool = {}
local auth = "Basic " .. (os.getenv("TOKEN_BASIC") or "")
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = auth }

function init(args)
  local f = assert(io.open(assert(os.getenv("TOKEN_REFRESH_FILE")), "r"))
  local i, n = 0, index   -- set by setup() in this thread's state
  local total = tonumber(os.getenv("TOKEN_THREADS") or "2")   -- wrk -t
  for line in f:lines() do
    if i % total == n - 1 and #line > 0 then table.insert(pool, line) end
    i = i + 1
  end
  f:close()
end

function request()
  local rt = table.remove(pool) or ""
  return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token=" .. rt)
end

function response(status, hdrs, body)
  local rt = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if rt then table.insert(pool, rt) end
end
