-- wrk script for bench/preconditions.  Environment:
--   PATH_MODE=one   every request to /<prefix>/1
--   PATH_MODE=many  each request to a resource no other request uses
--                   (thread, counter), so no two writes share a lock
--   PREFIX=plain|things   which route (unguarded or guarded)
--   IF_MATCH=<etag>       sent as If-Match when set
local mode = os.getenv("PATH_MODE") or "one"
local prefix = os.getenv("PREFIX") or "plain"
local etag = os.getenv("IF_MATCH")
local body = '{"title":"bench","ok":true}'
local threads = 0
local counter = 0

function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

function request()
    local headers = { ["Content-Type"] = "application/json" }
    if etag and etag ~= "" then
        headers["If-Match"] = etag
    end
    local path = "/" .. prefix .. "/1"
    if mode == "many" then
        counter = counter + 1
        path = string.format("/%s/t%d-%d", prefix, tid or 0, counter)
    end
    return wrk.format("PUT", path, headers, body)
end
