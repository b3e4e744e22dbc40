-- The same row (summary not redacted) into a plain table with the same indexes and foreign keys.
INSERT INTO bench.plain_logs (tenant_id, integration_id, action_id, request_summary, response_summary, status_code, latency_ms)
VALUES ('c0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000001', 'f0000000-0000-4000-8000-000000000001',
        '{"method": "POST", "url": "https://slack.com/api/chat.postMessage?channel=C024BE91L", "headers": {"Authorization": "Bearer xoxb-1234567890-abcdefghijkl", "Content-Type": "application/json; charset=utf-8", "User-Agent": "waygate/1.0"}, "body": {"channel": "C024BE91L", "text": "Deploy finished: 42 services, 0 errors"}}', '{"status": 200}', 200, 35);
