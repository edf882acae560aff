-- wrk script for bench/idempotency: POST /orders with a small JSON body.
-- With KEYED=1 in the environment every request carries an
-- Idempotency-Key no other request uses (run id, thread, counter), so
-- each one is looked up, claimed and stored: the full cost of the
-- contract, never a replay.  Script argument 1: the run id.
local keyed = os.getenv("KEYED") == "1"
local body = '{"sku":"bench","qty":1}'
local threads = 0
local prefix = "k"
local counter = 0

function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

function init(args)
    prefix = string.format("%s-%d", args[1] or "run", tid or 0)
end

function request()
    local headers = { ["Content-Type"] = "application/json" }
    if keyed then
        counter = counter + 1
        headers["Idempotency-Key"] = prefix .. "-" .. counter
    end
    return wrk.format("POST", "/orders", headers, body)
end
