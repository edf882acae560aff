-- wrk: each request carries the next of N bearer tokens (read from the
-- file named by TOKENS_FILE), so the verifier's cache holds N entries.
local tokens = {}
local i = 0
function init(args)
    for line in io.lines(os.getenv("TOKENS_FILE")) do
        tokens[#tokens + 1] = line
    end
end
function request()
    i = i + 1
    local tok = tokens[(i % #tokens) + 1]
    return wrk.format("GET", "/bench", {["Authorization"] = "Bearer " .. tok})
end
