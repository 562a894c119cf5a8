-- wrk script for bench/run.sh's upload rows: POSTs the file named by BODY_FILE (read once)
-- as the request body, with the Cookie header from the COOKIE environment variable if set.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
local cookie = os.getenv("COOKIE")
if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end
