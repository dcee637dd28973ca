-- Provision fresh instances and keep them, to fill the state store.
local counter = 0
prefix = ""
local body = '{"service_id":"5b6e8f4a-1c2d-4e3f-9a8b-7c6d5e4f3a21",' ..
    '"plan_id":"0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",' ..
    '"organization_guid":"bench-org","space_guid":"bench-space"}'

local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("prefix", tostring(os.time()) .. "-" .. threads)
end

-- wrk.format replaces the command line's headers when given any, so copy them.
function json_headers()
    local headers = {["Content-Type"] = "application/json"}
    for name, value in pairs(wrk.headers) do
        headers[name] = value
    end
    return headers
end

function request()
    counter = counter + 1
    return wrk.format("PUT", "/v2/service_instances/fill-" .. prefix .. "-" .. counter,
        json_headers(), body)
end
