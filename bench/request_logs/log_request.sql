-- pg_tenancy: enter the tenant, then log_request (action checked, both summaries redacted and
-- capped, row written as the caller into the partitioned table).
SELECT tenancy.set_tenant('c0000000-0000-4000-8000-000000000001'),
       tenancy.log_request('e0000000-0000-4000-8000-000000000001', 'f0000000-0000-4000-8000-000000000001',
                           '{"method": "POST", "url": "https://slack.com/api/chat.postMessage?channel=C024BE91L", "headers": {"Authorization": "Bearer xoxb-1234567890-abcdefghijkl", "Content-Type": "application/json; charset=utf-8", "User-Agent": "waygate/1.0"}, "body": {"channel": "C024BE91L", "text": "Deploy finished: 42 services, 0 errors"}}', '{"status": 200}', 200, 35);
