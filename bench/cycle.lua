-- Provision and deprovision instances. Odd requests provision a new
-- instance, and even ones deprovision the instance provisioned 64 pairs
-- earlier, whose provision has finished whichever connection sent it.
-- The first 64 deprovisions find nothing and get 410 Gone.
local lag = 64
local counter = 0
prefix = ""
local service = "5b6e8f4a-1c2d-4e3f-9a8b-7c6d5e4f3a21"
local plan = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
local body = '{"service_id":"' .. service .. '","plan_id":"' .. plan ..
    '","organization_guid":"bench-org","space_guid":"bench-space"}'

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
    local pair = math.floor((counter + 1) / 2)
    if counter % 2 == 1 then
        return wrk.format("PUT", "/v2/service_instances/" .. prefix .. "-" .. pair, json_headers(), body)
    end
    return wrk.format("DELETE", "/v2/service_instances/" .. prefix .. "-" .. (pair - lag) ..
        "?service_id=" .. service .. "&plan_id=" .. plan)
end
